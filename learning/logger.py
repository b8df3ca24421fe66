"""Metric sinks: CSV (schema grows when new keys appear), TensorBoard and wandb.

wandb must never hang a run on a machine without network: offline is the default mode,
WANDB_MODE is set to match, the init timeout is short, and any init failure degrades to a
warning. The run id is kept so a resumed run continues the same wandb run.
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from learning.console import log_file_full, say, watch_log_files


class CsvSink:
    """Append rows to a CSV file; when a row brings new keys, the file is rewritten with the union header.

    `upto`: a run resumed from a snapshot at that many frames: rows logged after it belong to
    the stretch the resume does again (a SIGKILL after the snapshot), so they are dropped, not
    written twice. A write that fails (a full disk) leaves the file as it was, with no partial
    row, and raises an OSError naming the file."""

    def __init__(self, path: Path, upto: int | None = None) -> None:
        self.path = path
        self.fields: list[str] = []
        self.dropped = 0
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                self.fields = next(csv.reader(f), [])
            if upto is not None and self.fields:
                self.dropped = self._drop_after(upto)

    def _drop_after(self, frames: int) -> int:
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if not _after(r.get("frames"), frames)]
        if len(keep) < len(rows):
            self._rewrite(keep)
        return len(rows) - len(keep)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        try:
            with tmp.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields)
                w.writeheader()
                w.writerows(rows)
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OSError(e.errno, e.strerror, str(self.path)) from e

    def write(self, row: Mapping[str, Any]) -> None:
        new = [k for k in row if k not in self.fields]
        if new or not self.path.exists():
            old_rows: list[dict[str, str]] = []
            if self.path.exists() and self.fields:
                with self.path.open(newline="") as f:
                    old_rows = list(csv.DictReader(f))
            before = self.fields
            self.fields = self.fields + new
            try:
                self._rewrite(old_rows)
            except OSError:
                self.fields = before
                raise
        size = self.path.stat().st_size
        try:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(dict(row))
        except OSError as e:  # no partial row left behind
            try:
                os.truncate(self.path, size)
            except OSError:
                pass
            raise OSError(e.errno, e.strerror, str(self.path)) from e


def _after(value: str | None, frames: int) -> bool:
    try:
        return float(value) > frames  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


class MetricLogger:
    """Fan-out of scalar metrics to the enabled sinks. `step` is always env frames."""

    def __init__(self, cfg: DictConfig, work_dir: Path, wandb_run_id: str | None = None,
                 resumed_at: int | None = None) -> None:
        """`resumed_at`: the frames of the snapshot a resume continues from (see CsvSink's `upto`)."""
        self.work_dir = work_dir
        self.csv: dict[str, CsvSink] = {}
        watch_log_files()
        if cfg.csv.use:
            self.csv = {kind: CsvSink(work_dir / f"{kind}.csv", resumed_at) for kind in ("train", "eval")}
            for kind, sink in self.csv.items():
                if sink.dropped:
                    say(f"[run] {kind}.csv: dropped {sink.dropped} row(s) logged after {resumed_at} frames, where "
                        "the snapshot this run resumes from was taken (they are logged again)")
        self.tb = None
        if cfg.tb.use:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(work_dir / "tb"))
        self.wandb_run = None
        self.wandb_run_id = wandb_run_id
        if cfg.wandb.use:
            self._init_wandb(cfg, wandb_run_id)

    def _init_wandb(self, cfg: DictConfig, run_id: str | None) -> None:
        mode = cfg.wandb.mode or "offline"
        os.environ["WANDB_MODE"] = mode
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            import wandb

            self.wandb_run = wandb.init(
                project=cfg.wandb.project, entity=cfg.wandb.entity, name=cfg.wandb.name, mode=mode,
                id=run_id, resume="allow" if run_id else None, dir=str(self.work_dir),
                config=OmegaConf.to_container(cfg, resolve=True),
                settings=wandb.Settings(init_timeout=30, silent=True))
            self.wandb_run_id = self.wandb_run.id
        except Exception as exc:  # never let logging kill a training run
            warnings.warn(f"wandb disabled: init failed ({exc!r})")
            self.wandb_run = None

    def log(self, kind: str, metrics: Mapping[str, float], step: int) -> None:
        """kind: 'train' or 'eval'. Metric names are written as given (e.g. 'eval/success_rate')."""
        row = {"frames": step, **{k: float(v) for k, v in metrics.items()}}
        full = log_file_full()
        if full is not None:  # train.log hit a full disk: the run ends like any write that does
            raise full
        if kind in self.csv:
            self.csv[kind].write(row)
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k if "/" in k else f"{kind}/{k}", float(v), step)
        if self.wandb_run is not None:
            self.wandb_run.log({(k if "/" in k else f"{kind}/{k}"): float(v) for k, v in metrics.items()}, step=step)

    def log_video(self, path: Path, step: int) -> None:
        if self.wandb_run is None:
            return
        try:
            import wandb

            self.wandb_run.log({"eval/video": wandb.Video(str(path), format="mp4")}, step=step)
        except Exception as exc:
            warnings.warn(f"wandb video upload skipped ({exc!r})")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish()
            except Exception as exc:
                warnings.warn(f"wandb finish failed ({exc!r})")
