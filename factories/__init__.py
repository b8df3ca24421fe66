"""RoboBase EnvFactory plugin: `GenesisLiftFactory`, `MujocoLiftFactory`, `WrappedGenesisVectorEnv`."""
from factories.factory import GenesisLiftFactory, MujocoLiftFactory, task_kwargs
from factories.vector_env import SingleEnvView, WrappedGenesisVectorEnv, WrappedVectorEnv

__all__ = ["GenesisLiftFactory", "MujocoLiftFactory", "WrappedGenesisVectorEnv", "WrappedVectorEnv",
           "SingleEnvView", "task_kwargs"]
