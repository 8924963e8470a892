"""Skills shipped with the orchestrator: one folder per skill, plus the datasets they train on."""
