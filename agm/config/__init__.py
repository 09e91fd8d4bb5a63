"""Layer 1, configuration: params.yaml → frozen dataclasses (``params``), their one-line checks (``checks``) and
the errors a user can fix from the message alone (``errors``). Imports nothing from the layers above."""
