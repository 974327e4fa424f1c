#!/usr/bin/env python3
"""Heavy-pollution episodes in the UCI Beijing multi-site air data, as a
`series,start,end` events file for `yujing backtest --events`.

An episode: a station's hourly PM2.5 above 150 ug/m3 (the 24-hour mean of
"heavy pollution" in HJ 633-2012) for 3 hours or more in a row; missing
hours (NA) end an episode. Times are local (Beijing, +08:00).

    python3 deploy/examples/backtest/beijing-events.py ../shared/data/beijing-air \
        > deploy/examples/backtest/beijing-events.csv
"""
import csv
import pathlib
import sys

LIMIT, MIN_HOURS = 150.0, 3


def main(directory):
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["series", "start", "end"])
    for path in sorted(pathlib.Path(directory).glob("*.csv")):
        run = []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                stamp = "%04d-%02d-%02d %02d:00:00" % tuple(
                    int(row[k]) for k in ("year", "month", "day", "hour"))
                value = row["PM2.5"]
                if value not in ("", "NA") and float(value) > LIMIT:
                    run.append((row["station"], stamp))
                    continue
                if len(run) >= MIN_HOURS:
                    out.writerow([run[0][0], run[0][1], run[-1][1]])
                run = []
        if len(run) >= MIN_HOURS:
            out.writerow([run[0][0], run[0][1], run[-1][1]])


if __name__ == "__main__":
    main(sys.argv[1])
