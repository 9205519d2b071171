"""Pure media code for skuvid: compose, motion, encode, QA metrics. Never imports Dagster."""
