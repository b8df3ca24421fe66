"""Learning: the native off-policy engine (DrQ-v2 from pixels, SAC from state) over N batched envs.

    from learning.trainer import NativeTrainer
    from runconfig.compose import default_config
    NativeTrainer(default_config(**{"agent.name": "drqv2"}), factory, work_dir).train()

Agents (`drqv2`, `sac`, `twin_critic`, `teacher`, `networks`), the replay and its demos, the
trainer with its snapshots and logs, and the evaluation episode loop.
"""
