"""Probe (seventh round, docs/learning.md): a state teacher cloned from the pixels_cpu preset's
10 demos, scored on 50 held-out episodes. From the repository root:

    PYTHONPATH=. python docs/learning/runs/pixels_cpu_attempts/teacher_probe/probe.py \
        <demo_noise> <seeds, e.g. 1,2,3> <bc steps> [input noise] [demos] [members]

It mirrors `engines/native/teacher.py` (same inputs, MLP, batch and learning rate) but
standardises by the demos' mean and std instead of a running norm. Results: results.jsonl.
The rows with demo_noise > 0 ran at commit 2152e44, where the demos recorded the expert's clean
command at the perturbed states (DART's labels); on main `demo_noise` records the executed action."""
import json, sys, time
import torch
from torch import nn
from bench.vision_bench import compose_cfg, fit
from engines.evaluation import evaluate
from engines.native import demos, envio
from engines.native.networks import mlp, weight_init
from engines.native.trainer import DEMO_SEED_OFFSET, EVAL_SEED_OFFSET
from factories import MujocoLiftFactory

PRIV = "privileged_state"

class Teacher(nn.Module):
    def __init__(self, x, action_dim, hidden=1024, in_noise=0.0):
        super().__init__()
        self.register_buffer("mean", x.mean(0)); self.register_buffer("std", x.std(0).clamp_min(1e-3))
        self.net = mlp(x.shape[1], hidden, action_dim); self.apply(weight_init); self.in_noise = in_noise
    @staticmethod
    def state(o):
        return torch.cat([o["low_dim_state"].flatten(1).float(), o[PRIV].flatten(1).float()], -1)
    def forward(self, o, train=False):
        z = (self.state(o) - self.mean) / self.std
        if train and self.in_noise > 0:
            z = z + self.in_noise * torch.randn_like(z)
        return torch.tanh(self.net(z))
    @torch.no_grad()
    def act(self, o, step, eval_mode):
        return self(o)

def main():
    noise, seeds, steps = float(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
    in_noise = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    ndemos = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    members = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    torch.set_num_threads(2)
    out = []
    for seed in seeds:
        cfg = compose_cfg(["experiment=pixels_cpu", f"seed={seed}", f"demo_noise={noise}", f"demos={ndemos}"])
        torch.manual_seed(seed)
        fac = MujocoLiftFactory()
        tr, ev = fac.make_batched_env(cfg), fac.make_eval_env(cfg)
        spec, _ = envio.obs_spec(tr.single_observation_space)
        keys = list(spec)
        t0 = time.time()
        kept, tried = demos.collect(tr, lambda n: fac.make_expert(cfg, n), int(cfg.demos), seed + DEMO_SEED_OFFSET, keys)
        data = {"obs": {k: torch.cat([e["obs"][k] for e in kept]) for k in keys},
                "action": torch.cat([e["action"] for e in kept]).float()}
        ts = []
        for k in range(members):
            t = Teacher(Teacher.state(data["obs"]), int(tr.action_dim), in_noise=in_noise)
            fit(list(t.net.parameters()), lambda o, a: ((t(o, True) - a) ** 2).sum(-1).mean(), data, steps, 128, 1e-3)
            ts.append(t)
        class Ens:
            def act(self, o, step, eval_mode):
                with torch.no_grad():
                    return torch.stack([m(o) for m in ts]).mean(0)
        t = Ens()
        m, _ = evaluate(t, ev, 50, 0, seed + EVAL_SEED_OFFSET, keys, torch.device("cpu"))
        r = {"noise": noise, "in_noise": in_noise, "steps": steps, "members": members, "seed": seed, "kept": len(kept), "tried": tried,
             "rows": len(data["action"]), "success": m["eval/success_rate"], "s": time.time() - t0}
        print(json.dumps(r), flush=True); out.append(r)
        tr.close(); ev.close()
    print("MEAN", noise, in_noise, steps, sum(r["success"] for r in out) / len(out))

main()
