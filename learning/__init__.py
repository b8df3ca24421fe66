"""Learning: the native off-policy engine (DrQ-v2 from pixels, SAC from state) over N batched envs.

    from learning.trainer import NativeTrainer
    from runconfig.compose import default_config
    NativeTrainer(default_config(**{"agent.name": "drqv2"}), factory, work_dir).train()

Agents (`drqv2`, `sac`, `twin_critic`, `teacher`, `networks`), the replay, the demos and BC
pre-training on them (`demos`), the trainer's loop (`trainer`), what it reports (`train_stats`:
episode windows, the train log row, the ETA), snapshot files and a run's snapshots (`snapshot`),
and the evaluation episode loop (`evaluation`).
"""
