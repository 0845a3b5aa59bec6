"""Session header: the free disk where the suite writes, so that a run that fills it says so up front."""

import os
import shutil
import tempfile


def pytest_report_header(config):
    base = config.option.basetemp if config.option.basetemp and os.path.isdir(config.option.basetemp) \
        else tempfile.gettempdir()
    return f"free disk under {base}: {shutil.disk_usage(base).free / 2**30:.1f} GiB"
