"""The driver: one process per section (``--section``), the report (gpu_check.json, gpu_check.md, gpu_check.log)
rewritten after each."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from . import __doc__ as PACKAGE_DOC
from .common import PAPER_IMAGES_PER_S, ROOT, write_part
from .extra_seeds import ARMS
from .registry import SECTION_FUNCS, SECTIONS

OUT_OF_BUDGET = "out of budget"
"""A section stopped at its cap: its result holds what it finished; on a GPU not a failure of the code."""


def fmt(x: Any, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_md(report: dict[str, Any]) -> str:
    s = report["sections"]
    env = s.get("env", {}).get("result", {})
    lines = [f"# GPU check — {env.get('device_name', '?')} — {report['started'][:10]}", "",
             f"`scripts/gpu_check.sh{' --dry-run' if report['dry_run'] else ''}` at commit `{report['commit']}`, "
             f"budget {report['budget_s']:.0f} s, {report['elapsed_s']:.0f} s used. torch {env.get('torch')}, "
             f"CUDA {env.get('cuda_runtime')}, Triton {env.get('triton')}, "
             f"driver/GPU `{env.get('nvidia_smi', 'n/a')}`, "
             f"bf16 {env.get('bf16_supported')}.", "", "| section | status | seconds |", "|---|---|---|"]
    for name, *_ in SECTIONS:
        if name in s:
            lines.append(f"| {name} | {s[name]['status']} | {s[name]['seconds']:.0f} |")
    ok = [s[k]["result"] for k in ("train", "train_compiled") if s.get(k, {}).get("result")]
    runs = [r for res in ok for r in res["runs"]]
    if runs:
        lines += ["", f"Training step, batch {runs[0]['batch_size']}, {ok[0]['amp']} autocast "
                  f"(paper: {PAPER_IMAGES_PER_S:.0f} images/s on one RTX 4090):", "",
                  "| variant | compile | channels_last | ms/step | images/s | TFLOP/s | % dense peak | GiB "
                  "| host syncs | h for 500k |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in runs:
            pf = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
            lines.append(f"| {r['variant']} | {r['compile']} | {r['channels_last']} | {r['step_time_ms']:.1f} | "
                         f"{r['images_per_s']:.0f} | {r['achieved_tflops']:.1f} | {fmt(pf)} | "
                         f"{r['peak_memory_gib']:.1f} | {r['host_syncs_per_step']} | "
                         f"{r['projected_hours_500k_steps']:.1f} |")
    if s.get("stacked_seeds", {}).get("result"):
        r = s["stacked_seeds"]["result"]
        lines += ["", f"Stacked seeds (default profile's AGM, batch {r['batch_size']}): " + "; ".join(
            f"{x['seeds']} seeds {x['seed_steps_per_s']} seed-steps/s (x{x['factor']})" for x in r["runs"]) + "."]
    if s.get("sample", {}).get("status") == "ok":
        r = s["sample"]["result"]
        lines += ["", f"Sampling (Euler–Maruyama, EMA drift; timed {r['timed_nfe']} NFE, projected to 500): largest "
                  f"batch that fits {r['largest_batch_that_fits']}.", "",
                  "| batch | mode | ms/NFE | images/s at NFE 500 | min for 10k | peak GiB |",
                  "|---|---|---|---|---|---|"]
        for x in r["runs"]:  # "mode" since the A/B of sampling modes; earlier runs name their dtype ("amp")
            if not x.get("fits", True):
                lines.append(f"| {x['batch']} | {x['mode']} | out of memory | | | |")
                continue
            lines.append(f"| {x['batch']} | {x.get('mode', x.get('amp'))} | {1e3 * x['seconds_per_nfe']:.1f} | "
                         f"{x['images_per_s_at_nfe_500']:.1f} | {x['projected_minutes_10k_at_nfe_500']:.1f} | "
                         f"{fmt(x.get('peak_memory_gib'))} |")
        if "full_draw" in r:
            f = r["full_draw"]
            lines.append(f"\nOne whole draw: batch {f['batch']} at NFE {f['nfe']} in {f['seconds']:.1f} s "
                         f"(projected {f['projected_seconds']:.1f} s).")
    if (sp := s.get("sample_precision", {}).get("result")) and "verdict" in sp:
        lines += ["", f"bf16 sampling ({sp['machine']}, {sp['n']} samples at NFE {sp['nfe']}, "
                  f"{len(sp['rows'])} noise seeds): {sp['metric']} bf16 − float32 "
                  f"{sp['paired_diff_bf16_minus_float32']:+.4f} ± {sp['paired_diff_ci95_half_width']:.4f}, sampling "
                  f"noise SD {sp['sampling_noise_sd']:.4f}: {sp['verdict']}."]
    if s.get("attention", {}).get("result"):
        r = s["attention"]["result"]
        lines += ["", f"scaled_dot_product_attention at batch {r['batch']}, {r['heads']} heads, {r['tokens']} tokens: "
                  + "; ".join(f"{x['dtype']} {x['layout']} {x['ms']:.1f} ms ({fmt(x['extra_peak_gib'])} GiB)"
                              for x in r["runs"]) + "."]
    if s.get("correctness", {}).get("status") == "ok":
        c = s["correctness"]["result"]
        b, t = c["bf16_vs_fp32"], c["bf16_training"]
        lines += ["", f"Correctness: bf16 vs float32 drift loss over the first {b['steps']} steps, max relative "
                  f"difference {b['max_rel_diff_drift_loss']:.4f} (tolerance {b['tolerance']}: "
                  f"{'pass' if b['passed'] else 'FAIL'}); bf16 training {t['steps']} steps, drift loss "
                  f"{t['mean_drift_loss_first_10pct']:.4f} → {t['mean_drift_loss_last_10pct']:.4f} "
                  f"({'pass' if t['passed'] else 'FAIL'})."]
    if "stages" in s and s["stages"].get("result"):
        st = s["stages"]["result"]
        lines += ["", "Paper-path stages on this device: " + ", ".join(
            f"{r['stage']} {'ok' if r['returncode'] == 0 else 'rc ' + str(r['returncode'])} ({r['seconds']:.0f} s)"
            for r in st["stages"]) + f" — {'pass' if st['passed'] else 'FAIL'}."]
    if s.get("converged_study", {}).get("result"):
        c = s["converged_study"]["result"]
        lines += ["", f"Converged study ({c['steps']} steps, seeds stacked per arm from {c['first_seed']}): "
                  f"{len(c['rows'])} rows (converged_study.csv, converged_study_steps/), "
                  f"{len(c['failures'])} failures; "
                  + "; ".join(f"{t['arm']} trained in {t['seconds']} s" for t in c["trained"]) + "."]
    if "extra_seeds" in s and s["extra_seeds"].get("result"):
        e = s["extra_seeds"]["result"]
        lines += ["", f"Extra default-profile seeds: {len(e['rows'])} rows (extra_seeds.csv), "
                  f"{len(e['failures'])} failures."]
    if "no_detach" in s and s["no_detach"].get("result"):
        nd = s["no_detach"]["result"]
        lines += ["", f"Without the stop-gradient (λ = {nd['lambda']:g}, {nd['steps']} steps asked, "
                  f"{nd.get('steps_per_s')} steps/s per run, no_detach_curves.csv): "
                  + " ".join(f"seed {c['seed']}: {c['verdict']}" for c in nd["collapse"])]
    for name, sec in s.items():
        if sec["status"] not in ("ok",):
            lines.append(f"\n**{name}: {sec['status']}** — {sec.get('error', '')[:400]}")
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    """HEAD (``+dirty`` with uncommitted changes to tracked files), or $GPU_CHECK_COMMIT where there is no git."""
    if os.environ.get("GPU_CHECK_COMMIT"):
        return os.environ["GPU_CHECK_COMMIT"]
    try:
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return (res.stdout.strip() or "unknown") + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def _echo(stream: Any, log: Any) -> None:
    """Copy a section's output to this process's stdout (indented) and to the log, line by line."""
    for line in stream:
        sys.stdout.write(f"  {line}")
        sys.stdout.flush()
        log.write(line)
        log.flush()


def drive(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    report: dict[str, Any] = {"schema": 1, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "dry_run": args.dry_run, "budget_s": args.budget, "commit": git_commit(),
                              "sections": {}}
    log = open(out / "gpu_check.log", "a")
    wanted = [s for s in SECTIONS if not args.only or s[0] in args.only]

    def save() -> None:
        report["elapsed_s"] = time.monotonic() - start
        tmp_json = out / "gpu_check.json.tmp"
        tmp_json.write_text(json.dumps(report, indent=1, default=str))
        tmp_json.replace(out / "gpu_check.json")
        (out / "gpu_check.md").write_text(summary_md(report))

    device_name = "cpu (dry run)"
    channels_last = False
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp_root:
        for name, cap_gpu, cap_dry in wanted:
            left = args.budget - (time.monotonic() - start)
            cap = min(cap_dry if args.dry_run else cap_gpu, left)
            if cap < 15:
                report["sections"][name] = {"status": "skipped", "seconds": 0.0,
                                            "error": f"{left:.0f} s of the budget left"}
                save()
                continue
            part = Path(tmp_root) / f"{name}.json"
            cmd = [sys.executable, "-m", __package__, "--section", name, "--part", str(part), "--out",
                   str(out), "--section-budget", str(max(cap - 20, 10)), "--device-name", device_name]
            cmd += ["--dry-run"] if args.dry_run else []
            cmd += ["--channels-last"] if channels_last else []
            cmd += ["--arms", *args.arms]
            cmd += ["--first-seed", str(args.first_seed)] if args.first_seed is not None else []
            log.write(f"\n===== {name} (cap {cap:.0f} s) {' '.join(cmd)}\n")
            log.flush()
            print(f"gpu_check: {name} (cap {cap:.0f} s)", flush=True)
            t0 = time.monotonic()
            # its own POSIX process group (start_new_session), so a kill at the cap also ends the stage
            # processes the section started
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_root,
                                    start_new_session=True)
            echo = threading.Thread(target=_echo, args=(proc.stdout, log), daemon=True)  # output as it comes
            echo.start()
            status = "ok"
            try:
                proc.wait(timeout=cap)  # the cap holds even while the section prints nothing
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                status = OUT_OF_BUDGET
            echo.join(timeout=5)
            rec: dict[str, Any] = {"status": status, "seconds": time.monotonic() - t0}
            if part.exists():
                payload = json.loads(part.read_text())
                rec |= payload
                if status == "ok" and payload.get("error"):
                    rec["status"] = "failed"
            elif status == "ok":
                rec |= {"status": "failed", "error": f"exit code {proc.returncode}, no result written"}
            if status == OUT_OF_BUDGET:  # what it finished before the cap stays in rec["result"]
                rec["error"] = f"stopped at its cap of {cap:.0f} s, with what it had finished"
            if rec["status"] == "ok" and isinstance(rec.get("result"), dict) and rec["result"].get("passed") is False:
                rec["status"] = "check failed"
            report["sections"][name] = rec
            if name == "env" and rec["status"] == "ok":
                device_name = rec["result"].get("device_name", device_name)
            if name == "train" and rec["status"] == "ok":
                channels_last = bool(rec["result"].get("channels_last_helps"))
            save()
            print(f"gpu_check: {name} {rec['status']} in {rec['seconds']:.0f} s", flush=True)
    save()
    log.close()
    bad = not_ok(report, args.dry_run)
    print(f"gpu_check: {len(report['sections'])} sections, {'all ok' if not bad else 'not ok: ' + ', '.join(bad)}; "
          f"{out / 'gpu_check.json'}, {out / 'gpu_check.md'}")
    return 1 if bad else 0


def not_ok(report: dict[str, Any], dry_run: bool) -> list[str]:
    """The sections that make the check fail: any that failed; on a GPU a section stopped at its cap is out of
    budget (its result holds what it finished), not broken, but a dry run must run every section to its end."""
    fine = ("ok", "skipped") if dry_run else ("ok", "skipped", OUT_OF_BUDGET)
    return [n for n, r in report["sections"].items() if r["status"] not in fine]


def run_section(args: argparse.Namespace) -> int:
    tmp = Path.cwd()
    payload: dict[str, Any] = {}
    try:
        payload["result"] = SECTION_FUNCS[args.section](args, tmp)
    except Exception as exc:  # recorded in the report: the next section still runs
        traceback.print_exc()
        payload["error"] = f"{type(exc).__name__}: {exc}"
        payload["traceback"] = traceback.format_exc()[-4000:]
    if "result" not in payload and Path(args.part).exists():  # keep what the section finished before failing
        payload["result"] = json.loads(Path(args.part).read_text()).get("result")
    write_part(args, payload.pop("result", None), **payload)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=PACKAGE_DOC,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.md, gpu_check.log")
    ap.add_argument("--dry-run", action="store_true", help="the same code on the CPU at tiny sizes")
    ap.add_argument("--budget", type=float, help="seconds for all sections (default: 480 on a GPU; dry: the sum "
                    "of the sections' caps)")
    ap.add_argument("--only", nargs="+", choices=[s[0] for s in SECTIONS], help="run only these sections")
    ap.add_argument("--section", choices=list(SECTION_FUNCS), help=argparse.SUPPRESS)
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--section-budget", type=float, default=60.0, help=argparse.SUPPRESS)
    ap.add_argument("--device-name", default="", help=argparse.SUPPRESS)
    ap.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arms", nargs="+", help=f"extra_seeds: the arms, model or model@lambda (default: "
                    f"{' '.join(ARMS)}; dry run: baseline shuffled@1.0, both the main and the control stages)")
    ap.add_argument("--first-seed", type=int,
                    help="extra_seeds, no_detach: the first training seed (default: 100; dry: 900); "
                    "converged_study: its first seed (default: 200)")
    args = ap.parse_args()
    if args.arms is None:
        args.arms = ["baseline", "shuffled@1.0"] if args.dry_run else list(ARMS)
    if args.budget is None:  # dry: every section its whole cap, so a loaded 2-core machine still finishes each
        args.budget = sum(cap for _, _, cap in SECTIONS) if args.dry_run else 480.0
    if args.section:
        return run_section(args)
    return drive(args)
