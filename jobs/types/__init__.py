"""Job types shipped with ApiOps; importing this package registers them all."""
