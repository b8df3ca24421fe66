"""Run the measurements in subprocesses and render them as markdown sections and a PNG."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_module(args: list[str], timeout: int = 1800) -> dict[str, Any] | None:
    """Run `python -m <args>` and parse its `RESULT {...}` line (None, with a note, on failure)."""
    print(f"$ python -m {' '.join(args)}", flush=True)
    p = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[len("RESULT "):])
            print(f"  {res}", flush=True)
            return res
    print(f"  failed (exit {p.returncode}): {p.stderr[-800:]}", file=sys.stderr, flush=True)
    return None


def replace_section(text: str, name: str, body: str) -> str:
    """Replace (or append) the section between <!-- name --> markers."""
    block = f"<!-- {name} -->\n{body.rstrip()}\n<!-- /{name} -->"
    pattern = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    return pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"


def mujoco_section(steps: int, ns: list[int], rounds: int) -> tuple[str, list[dict], list[dict]]:
    """The single env's steps/s without and with the camera (measured here), and the batched state-only
    step against its bare physics per N (bench.mujoco_bench in a subprocess)."""
    from bench.mujoco_bench import env_steps_per_second

    rows, rates = [], []
    for pixels in (False, True):
        rate = env_steps_per_second(pixels, steps)
        label = "84x84 wrist camera" if pixels else "state only (no camera)"
        print(f"MuJoCo, {label}: {rate:.0f} env-steps/s", flush=True)
        rows.append(f"| MuJoCo | 1 | {label} | {rate:.0f} |")
        rates.append({"pixels": pixels, "env_steps_per_s": rate})
    r = run_module(["bench.mujoco_bench", "--ns", *map(str, ns), "--steps", str(steps), "--rounds", str(rounds)])
    costs = r["step_costs"] if r else []
    body = "| backend | envs | observation | env-steps/s |\n|---|---|---|---|\n" + "\n".join(rows)
    return body + "\n\n" + mujoco_cost_table(costs, ns), rates, costs


def mujoco_cost_table(costs: list[dict], ns: list[int]) -> str:
    """The markdown table of bench.mujoco_bench's step costs (a failed measurement says so)."""
    if not costs:
        return f"Batched step against its physics (N = {ns}): measurement failed (see the benchmark's output)."
    sub = costs[0]["n_substeps"]
    rows = [f"| {c['n']} | {c['physics_ms']:.3f} | {c['backend_ms']:.3f} | {c['env_ms']:.3f} | "
            f"{c['backend_over_physics']:.2f}x | {c['env_over_physics']:.2f}x | {c['layer_ms_per_step']:.2f} | "
            f"{c['torch_ops_per_step']} |" for c in costs]
    return "\n".join([
        "The native engine's batched env (`BatchedLiftEnv`, state only, stage 3, frame stack 3) against its own "
        f"physics, ms per env step and env: *bare physics*: the step's {sub} `mj_step` substeps of each env on the "
        "batch's own `MjData`s and nothing else; *backend*: `backend.step` + `backend.read` (controls in, state "
        "out as (N, ...) tensors); *env step*: `BatchedLiftEnv.step` (task: IK, predicates, reward, observation, "
        "frame stacks). The three replay one trajectory from the same reset and take turns, "
        f"{costs[0]['rounds']} rounds of {costs[0]['steps']} steps; the ratios are the medians of the per-round "
        "ratios. *layer*: env step minus backend, ms per batched step (not per env), with the ATen operators "
        "one batched step runs (`bench/mujoco_bench.py`).",
        "",
        "| N | bare physics ms/env | backend ms/env | env step ms/env | backend / physics | env step / physics | "
        "layer ms per step | torch ops per step |",
        "|---|---|---|---|---|---|---|---|",
        *rows])


def genesis_section(ns: list[int], cam_ns: list[int], steps: int, cam_steps: int, device: str
                    ) -> tuple[str, list[dict]]:
    results = []
    for pixels in (False, True):
        for n in (cam_ns if pixels else ns):
            args = ["bench.genesis_bench", str(n), "--steps", str(cam_steps if pixels else steps), "--device", device]
            r = run_module(args + (["--pixels"] if pixels else []))
            results.append(r or {"n": n, "pixels": pixels, "failed": True})
    return genesis_table(results, device), [r for r in results if not r.get("failed")]


def genesis_table(results: list[dict], device: str) -> str:
    """The markdown table for genesis_bench results (state-only rows first, then camera rows)."""
    rows, base = [], {}
    for r in results:
        n, pixels = r["n"], r["pixels"]
        if r.get("failed"):
            rows.append(f"| {n} | {'84x84' if pixels else 'none'} | failed |" + " |" * 16)
            continue
        base.setdefault(pixels, r["wrapped"])  # the first N of each kind is the scaling reference
        over = 100 * (r["bare"] / r["wrapped"] - 1)
        layer = 100 * (r["task_only"] / r["wrapped"] - 1)
        # One reset of all N envs per episode, spread over its steps.
        per_step_s = 1 / r["wrapped"] + r["reset_ms"] / 1e3 / (r["episode_length"] * n)
        # The batched env per episode: one reset of the N envs' task state (their first images are
        # the next step's one render) and the one step the reset rows spend.
        batched = r.get("batched", float("nan"))
        b_step_s = (1 / batched + (r.get("task_reset_ms", float("nan")) / 1e3 + n / batched)
                    / (r["episode_length"] * n))
        comp = r.get("compiled", float("nan"))
        vs_render = (f"{100 * r['wrapped'] / r['render_only']:.0f} % | {100 * batched / r['render_only']:.0f} % | "
                     f"{100 * comp / r['render_only']:.0f} % | {100 * r['bare'] / r['render_only']:.0f} %"
                     if pixels else "— | — | — | —")
        rows.append(f"| {n} | {'84x84' if pixels else 'none'} | {r['wrapped']:.0f} | "
                    f"{r['wrapped'] / base[pixels]:.1f}x | {r['bare']:.0f} | {over:+.0f} % | "
                    f"{r['task_only']:.0f} | {layer:+.0f} % | {r['reset_ms']:.0f} | {1 / per_step_s:.0f} | "
                    f"{batched:.0f} | {100 * (r['bare'] / batched - 1):+.0f} % | {1 / b_step_s:.0f} | "
                    f"{comp:.0f} | {100 * (r['bare'] / comp - 1):+.0f} % | {vs_render} |")
    return "\n".join([
        f"Genesis {device}, `WrappedGenesisVectorEnv` (stage 3, frame stack 3), env-steps/s, against: a bare "
        "Genesis loop of the same scene and N (control + `scene.step` + camera render, replaying the wrapped "
        "run's joint targets), and the batched task without the wrapper layer (`LiftTask.step` + `observe`, "
        "same actions: state read-out, IK, predicates and rewards are in both). 'with resets': one reset of all "
        "N envs per 200-step episode added (the wrapped env observes the batch again when envs reset). "
        "'batched': the native engine's env (`envs/batched.py`, the wrapped env's core: task, frame stacks, "
        "torch out); with resets it pays one reset of the N envs' task state and one extra step per episode, "
        "and no second render. 'compiled': the batched env with `task.compile=true` (the task's torch ops "
        "fused by torch.compile; compiled once before timing). 'renderer alone': the wrapped run's own "
        "states teleported back in, visuals synced and rendered, nothing else (what a frame costs depends "
        "on what the camera sees). "
        "The variants replay the same trajectory and take turns, 3 rounds each.",
        "",
        "| N | camera | wrapped | vs N=1 | bare loop | overhead vs bare | task alone | wrapper layer | "
        "reset all N (ms) | wrapped with resets | batched | batched over bare | batched with resets | "
        "compiled | compiled over bare | "
        "wrapped / renderer alone | batched / renderer alone | compiled / renderer alone | bare / renderer alone |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows])


def train_section(ns: list[int], env: str, frames: int) -> tuple[str, list[dict]]:
    rows, results = [], []
    for agent, image in (("drqv2", 84), ("sac", 84)):
        for n in ns:
            r = run_module(["bench.train_bench", str(n), "--env", env, "--frames", str(frames), "--agent", agent,
                            "--image", str(image)])
            if r is None:
                rows.append(f"| {agent} | {n} | failed | | |")
                continue
            results.append(r)
            rows.append(f"| {agent} ({'pixels 84x84' if agent == 'drqv2' else 'state'}) | {n} | "
                        f"{r['steady_fps']:.1f} | {r['updates']} | {r['bytes_per_transition']:.0f} |")
    frame = 84 * 84 * 3
    body = "\n".join([
        f"Native engine end to end on `{env}`: acting, env steps, batched replay inserts and updates at "
        "update-to-data 0.5, batch 256 (env frames/s over the last interval after warm-up).",
        "",
        "| agent | N | env frames/s | updates done | replay bytes / transition |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"One 84x84x3 frame is {frame} bytes; a pixel transition's replay cost above is the frame, the "
        "18-float state, action, reward and flags (target: at most 1.1x the frame plus the low-dim state)."])
    return body, results


def update_section(batches: list[int], rounds: int) -> tuple[str, dict | None]:
    """ms per DrQ-v2 update: the project's default, the project in fp32, the reference; interleaved."""
    r = run_module(["bench.update_bench", "--batches", *map(str, batches), "--rounds", str(rounds)])
    if r is None:
        return "DrQ-v2 update: measurement failed (see the benchmark's output).", None
    opts = r["default_options"]
    rows = [f"| {b} | {v['ms']['default']:.0f} | {v['ms']['serial']:.0f} | {v['ms']['fp32']:.0f} | "
            f"{v['ms']['reference']:.0f} | {v['speedup_vs_reference']:.2f}x | {v['fp32_vs_reference']:.2f}x |"
            for b, v in r["batches"].items()]
    body = ("One DrQ-v2 update (critic + actor + target, augmentation included), 84x84 wrist camera, frame stack 3, "
            f"one torch thread, median of {r['rounds']} interleaved rounds. *default*: the project as configured "
            f"(`agent.precision/encoder_chunk/channels_last=auto`, here bf16={opts['bf16']}, "
            f"chunk={opts['chunk']}, channels_last={opts['channels_last']}, "
            f"`agent.parallel_target=auto` -> {opts['parallel_target']}); *serial*: the default with "
            "`agent.parallel_target=false` (the TD target on the update's own thread); *fp32*: the project with "
            "`agent.precision=fp32 agent.encoder_chunk=0 agent.channels_last=false`; *reference*: a plain fp32 "
            "DrQ-v2 of the published architecture (images only), written in `bench/update_bench.py`.\n\n"
            "| batch | default ms | serial ms | fp32 ms | reference ms | default speed-up vs reference | "
            "fp32 vs reference |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    return body, r


def eval_section(episodes: int, rounds: int) -> tuple[str, dict | None]:
    """Seconds per evaluation of `episodes` episodes, the one-env loop against the batched one."""
    r = run_module(["bench.eval_bench", "--episodes", str(episodes), "--rounds", str(rounds)], timeout=4 * 3600)
    if r is None:
        return "Evaluation: measurement failed (see the benchmark's output).", None
    return eval_table(r), r


def eval_table(r: dict[str, Any]) -> str:
    """The markdown of one eval_bench result."""
    yes = lambda b: "yes" if b else "no"  # noqa: E731
    rows = []
    for p in r["presets"]:
        m, succ = p["median_s"], p["success"]
        obs = f"pixels {p['image']}x{p['image']}" if p["image"] else "state"
        rows.append(f"| `{p['preset']}` ({obs}, episodes of up to {p['episode_length']} steps, torch threads "
                    f"{p['torch_threads']}) | {p['eval_envs']} | {m['old']:.1f} | {m['new']:.1f} | "
                    f"{p['speedup']:.2f}x | {m['new_batched_forward']:.1f} | {p['speedup_batched_forward']:.2f}x | "
                    f"{100 * succ['old']:.0f} % / {100 * succ['new']:.0f} % / {100 * succ['new_batched_forward']:.0f} %"
                    f" | {yes(p['same_episodes'])} / {yes(p['same_episodes_batched_forward'])} |")
    p0 = r["presets"][0]
    return "\n".join([
        f"The trainer's evaluation of {p0['episodes']} episodes (its eval seeds) with a freshly initialised agent of "
        "each preset, in seconds (median of "
        f"{p0['rounds']} round{'s' * (p0['rounds'] != 1)}; the three variants take turns in one process). *old*: "
        "one episode after another on the single gymnasium env (`make_eval_env`) with NumPy observations and "
        "info, the loop used before, kept in `bench/eval_bench.py` as the baseline; *new*: "
        "`learning.evaluation` on `make_batched_eval_env`, num_eval_envs episodes at once, the agent acting one "
        "env at a time (the default); *batched forward*: the same with one forward pass for the whole batch. "
        "'same episodes': success, return and length of every episode equal to the old loop's.",
        "",
        "| preset | eval envs | old s | new s | speed-up | batched forward s | speed-up | success old / new / "
        "batched forward | same episodes: new / batched forward |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows])


def preset_results(patterns: list[str]) -> dict[int, dict[str, float]]:
    """seed -> the final evaluation (success, frames) of the preset's runs matching `patterns`."""
    from analysis.runs import CompareError, load_runs

    try:
        runs, _ = load_runs(patterns) if patterns else ([], [])
    except CompareError as exc:  # no runs yet: the baselines still stand on their own
        print(f"  preset runs: {exc}", flush=True)
        return {}
    return {int(r.seed): {"success": r.curve["success"][-1], "frames": r.frames[-1]}
            for r in runs if r.curve.get("success")}


def vision_section(experiment: str, seeds: list[int], episodes: int, bc_steps: int, runs: list[str], head: str,
                   reuse: Path | None = None) -> tuple[str, dict | None]:
    """Blind (open loop, low-dim BC) and seeing (image BC, the preset) policies on one task. With
    `reuse` (docs/benchmarks.json) the baselines are the ones measured last, with their own date
    line, and only the preset's runs are read again: the baselines take ~30 min to measure and
    do not change when the preset does."""
    if reuse is not None:
        r = json.loads(reuse.read_text()).get("vision") if reuse.exists() else None
        if not r or "measured" not in r:
            raise SystemExit(f"vision_reuse=true: {reuse} holds no dated vision baselines; measure them with "
                             "vision_reuse=false")
    else:
        r = run_module(["bench.vision_bench", "--experiment", experiment, "--seeds", *map(str, seeds),
                        "--episodes", str(episodes), "--bc-steps", str(bc_steps)], timeout=4 * 3600)
        if r is None:
            return head + "Vision baselines: measurement failed (see the benchmark's output).", None
        r["measured"] = head.strip()
    return r["measured"] + "\n\n" + vision_table(r, experiment, runs), r


def vision_table(r: dict[str, Any], experiment: str, runs: list[str]) -> str:
    """The markdown of one vision_bench result, with the preset's final evaluations beside it."""
    preset = preset_results(runs)
    r["preset"] = {str(k): v for k, v in preset.items()}
    pct = lambda x: f"{100 * x:.0f} %"  # noqa: E731
    rows = []
    for s in r["seeds"]:
        p = preset.get(int(s["seed"]))
        rl = f"{pct(p['success'])} ({p['frames'] / 1000:.0f}k frames)" if p else "not run"
        rows.append(f"| {s['seed']} | {s['demos_kept']}/{s['demos_tried']} ({s['transitions']}) | "
                    f"{pct(s['open_loop']['success'])} | {pct(s['lowdim_bc']['success'])} | "
                    f"{pct(s['image_bc']['success'])} | {rl} |")
    return (f"`experiment={experiment}`: evaluation success over {r['episodes']} held-out episodes per seed (the "
            "trainer's eval seeds), every policy built from the same scripted-expert demos (the trainer's demo "
            "seed). *open loop*: the demos' mean action per step, no observation; *low-dim BC*: an MLP on the "
            "frame-stacked proprioceptive state (no cube position), standardised by the demos' statistics; "
            "*image BC*: the DrQ-v2 encoder and actor (with the preset's low-dim standardisation) "
            f"regressed on the demo actions ({r['bc_steps']} Adam steps, batch {r['batch']}, random shifts); "
            "*the preset*: its final evaluation, read from its runs' `eval.csv`"
            + (f" ({', '.join(f'`{x}`' for x in runs)})" if runs else "") + ". Code: `bench/vision_bench.py`.\n\n"
            "| seed | demos kept (transitions) | open loop | low-dim BC | image BC | the preset |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows))


def plot(genesis: list[dict], train: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for pixels in (False, True):
        pts = sorted((r["n"], r["wrapped"]) for r in genesis if r["pixels"] == pixels)
        if pts:
            axes[0].plot(*zip(*pts), "o-", label="84x84 camera" if pixels else "state only")
    axes[0].set(xscale="log", yscale="log", xlabel="envs N", ylabel="env-steps/s", title="Genesis env (wrapped)")
    for agent in ("drqv2", "sac"):
        pts = sorted((r["n"], r["steady_fps"]) for r in train if r["agent"] == agent)
        if pts:
            axes[1].plot(*zip(*pts), "o-", label=agent)
    axes[1].set(xscale="log", yscale="log", xlabel="envs N", ylabel="env frames/s", title="training end to end")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def merge_raw(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """docs/benchmarks.json: the latest raw figures of every section, so that a run of one section
    (and the plot drawn from the file) keeps the others' figures."""
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update({k: v for k, v in new.items() if v})
    path.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def write_docs(path: Path, sections: dict[str, str]) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\nWritten by `python scripts/benchmark.py`.\n"
    for name, body in sections.items():
        text = replace_section(text, name, body)
    path.write_text(text)
    print(f"written to {path}")


os.environ.setdefault("PYTHONUNBUFFERED", "1")
