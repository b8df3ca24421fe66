"""The run config: every key declared once (`schema`, with `keys` for how), the checks at the door
(`rules`), and the shipped configs composed outside a Hydra app (`compose`). Below `factories`,
`learning` and `launch`. Importing it puts the declared defaults into Hydra's ConfigStore."""
from runconfig.schema import register

register()
