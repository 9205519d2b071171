"""The machine a benchmark ran on, recorded beside its figures."""

import os
import platform
from pathlib import Path


def machine_info() -> dict:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2)}
