"""RoboBase EnvFactory plugin: `GenesisLiftFactory`, `MujocoLiftFactory`, `WrappedGenesisVectorEnv`,
`make_factory(cfg)`, the factory a run config names (`env.factory`), and `factory_config(cfg)`,
the typed config they read (from our run config or RoboBase's)."""
from __future__ import annotations

from typing import Any

from envs.config import ConfigError
from factories.config import FactoryConfig, factory_config, task_kwargs
from factories.factory import GenesisLiftFactory, MujocoLiftFactory
from factories.vector_env import WrappedGenesisVectorEnv, WrappedVectorEnv

FACTORIES = {"factories.MujocoLiftFactory": MujocoLiftFactory, "factories.GenesisLiftFactory": GenesisLiftFactory}


def make_factory(cfg: Any) -> MujocoLiftFactory | GenesisLiftFactory:
    """The factory named by `cfg.env.factory`."""
    name = cfg.env.factory
    if name not in FACTORIES:
        raise ConfigError(f"env.factory={name!r} is invalid: allowed {', '.join(FACTORIES)}")
    return FACTORIES[name]()


__all__ = ["FACTORIES", "FactoryConfig", "GenesisLiftFactory", "MujocoLiftFactory", "WrappedGenesisVectorEnv",
           "WrappedVectorEnv", "factory_config", "make_factory", "task_kwargs"]
