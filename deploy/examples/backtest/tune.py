#!/usr/bin/env python3
"""Sweep the baseline rule's settings over NAB and the Beijing air data with
`yujing backtest`, and print one line per setting: recall, precision and
false warnings per 1000 series-hours (blue and above) on each data set.

    cargo build --release
    python3 deploy/examples/backtest/tune.py ../shared/data > tuning.tsv

The defaults in anomaly-rules.yaml are the setting picked from this table
(docs/backtest.md says how).
"""
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

YUJING = "target/release/yujing"
HERE = Path(__file__).parent

RULE = """rules:
  - id: tuned
    category: env
    metric: {metric}
    unit: x
    window: {window}
    aggregate: avg
    group_by: sensor
    baseline: {{ method: {method}, history: {history}{period} }}
    above: {{ blue: {blue} }}
{pending}"""


def run(data, args, rules, out):
    cmd = [YUJING, "backtest", *data, "--rules", str(rules), "--out", str(out),
           "--plots", "0", "--no-progress", *args]
    subprocess.run(cmd, check=True, capture_output=True)
    blue = json.loads((out / "summary.json").read_text())["rules"]["scores"]["*"][0]
    return blue


def main(shared):
    shared = Path(shared)
    nab = ([str(p) for p in sorted((shared / "nab/data").iterdir())],
           ["--events", str(shared / "nab/labels/combined_windows.json"),
            "--time-zone", "+00:00", "--lead", "1h"], "value")
    beijing = ([str(shared / "beijing-air")],
               ["--time", "year,month,day,hour", "--sensor-column", "station",
                "--metrics", "PM2.5=value", "--events",
                str(HERE / "beijing-events.csv"), "--lead", "3h"], "value")
    grid = itertools.product(
        ["robust", "seasonal"], ["3d", "7d", "14d"], ["1h", "2h"],
        [3, 4, 5, 6, 8], ["", "1h", "2h"])
    print("method\thistory\twindow\tblue\tfor\t"
          "nab_recall\tnab_precision\tnab_false\tbj_recall\tbj_precision\tbj_false\tbj_lead")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for method, history, window, blue, pending in grid:
            if method == "seasonal" and history == "3d":
                continue
            rules = tmp / "rules.yaml"
            row = [method, history, window, str(blue), pending or "0"]
            for data, args, metric in (nab, beijing):
                rules.write_text(RULE.format(
                    metric=metric, window=window, method=method, history=history,
                    period=", period: 1d" if method == "seasonal" else "",
                    blue=blue, pending=f"    for: {pending}\n" if pending else ""))
                s = run(data, args, rules, tmp / "out")
                row += [f"{s['recall'] or 0:.3f}", f"{s['precision'] or 0:.3f}",
                        f"{s['false_per_1000_series_hours']:.2f}"]
            row.append(f"{s['lead_minutes_median'] or 0:.0f}")
            print("\t".join(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
