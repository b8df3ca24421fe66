"""The run config: which keys exist (`schema`), what values they take (`rules`), and the shipped
configs composed outside a Hydra app (`compose`). Below `factories`, `learning` and `launch`."""
