"""Writes input.jsonl of the golden cases of the baseline's second
opinions (baseline-agreement, baseline-longer-scale, baseline-level-shift,
baseline-trend): hourly readings, deterministic noise. Run from the
repository root: python3 tests/golden/baseline_cases.py"""
import datetime as dt
import json
import math
import random

START = dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def write(case, sensor, metric, values):
    with open(f"tests/golden/{case}/input.jsonl", "w") as out:
        for h, v in enumerate(values):
            ts = (START + dt.timedelta(hours=h)).isoformat()
            line = {"sensor_id": sensor, "ts": ts, "metric": metric, "value": round(v, 3)}
            out.write(json.dumps(line) + "\n")


rng = random.Random(7)
noise = lambda size: rng.uniform(-size, size)

# Noise with a morning rush (07:00-10:00) on each of 5 days; on day 5 the
# same level from 14:00 to 17:00, when it is usually quiet.
values = []
for h in range(5 * 24):
    hour = h % 24
    loud = 7 <= hour < 10 or (h >= 4 * 24 and 14 <= hour < 17)
    values.append((70 if loud else 55) + noise(1))
write("baseline-agreement", "b1", "noise_db", values)

# PM2.5 wandering slowly around 40; on day 3 one hour at +40 (a spike),
# and from 18:00 four hours at +40 (an episode).
values = []
for h in range(4 * 24):
    v = 40 + 8 * math.sin(h / 4) + noise(1)
    if h == 2 * 24 + 10 or 2 * 24 + 18 <= h < 2 * 24 + 22:
        v += 40
    values.append(v)
write("baseline-longer-scale", "b1", "pm25", values)

# Turbidity about 5 NTU for two days, then 9 NTU (a new intake) that stays.
values = [(5 if h < 48 else 9) + noise(0.3) for h in range(3 * 24)]
write("baseline-level-shift", "w1", "turbidity_ntu", values)

# A reservoir filling 5 cm an hour for three days; on day 3 from 12:00 a
# surge 50 cm above the line for three hours, then back on it.
values = []
for h in range(3 * 24 + 12):
    v = 180 + 0.05 * h + noise(0.02)
    if 2 * 24 + 12 <= h < 2 * 24 + 15:
        v += 0.5
    values.append(v)
write("baseline-trend", "w1", "reservoir_m", values)
