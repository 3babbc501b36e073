"""Compiled model scoring (2.7.5): the ranker's trees as native code, scores identical to scikit-learn's.

scikit-learn's `predict_proba` on a HistGradientBoosting model validates its input, then calls
one Cython predictor per tree from a Python loop: 200 calls for 100 candidates. Here the trees
are compiled to a C shared library at `course train` time with TL2cgen (from the Treelite
project) and stored inside the model file, so the compiled trees can never belong to another
model. Measured alternatives and the reasons for this choice are in docs/operations.md
("Compiled scoring").

Scores are bit-for-bit scikit-learn's: the generated code adds the leaf values tree by tree in
scikit-learn's order, with scikit-learn's baseline added first (a one-leaf tree in front, so the
sum starts exactly as scikit-learn's does), and the probability is scikit-learn's own link
function (`scipy.special.expit`) of that margin. `tests/test_scoring.py` checks it.

Compiling needs a C compiler (`$CC`, else gcc, clang or cc). Without one, `course train` still
trains and saves the model, `compiled` stays None, and serving scores with scikit-learn: same
scores, slower (`runtime_name` says which one serves).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from course_lib.errors import CourseError
from course_lib.messages import say

if TYPE_CHECKING:
    import treelite

SKLEARN_RUNTIME = "scikit-learn"
COMPILE_PARAMS = {"parallel_comp": 2, "quantize": 1}  # two translation units: both cores compile
Scorer = Callable[[np.ndarray], np.ndarray]  # float64 matrix (rows x model features) -> P(label = 1)


class ScoringError(CourseError):
    """The compiled model cannot be built or loaded; the message says how to fix it."""


@dataclass(frozen=True)
class CompiledModel:
    """A model's trees compiled to a shared library, with the library's digest and how it was built."""

    library: bytes
    sha256: str
    runtime: str  # e.g. "tl2cgen 1.0.0 (gcc)"
    num_feature: int


def c_compiler() -> str | None:
    """The C compiler TL2cgen will call: $CC if set, else the first of gcc, clang, cc on PATH."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["gcc", "clang", "cc"]
    return next((name for name in candidates if shutil.which(name)), None)


@contextlib.contextmanager
def quiet() -> Iterator[Callable[[], str]]:
    """Keep TL2cgen's build log and the notes its bundled Treelite writes to the process's stderr
    (e.g. that the model came from a newer Treelite) out of `course train`'s output; yields a reader of them."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as native, contextlib.redirect_stdout(io.StringIO()) as printed, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def read() -> str:
            native.seek(0)
            return printed.getvalue() + native.read().decode(errors="replace")

        os.dup2(native.fileno(), 2)
        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _treelite_model(model: object) -> treelite.Model:
    """The fitted HistGradientBoostingClassifier as a Treelite model whose sum starts with the baseline.

    Treelite's importer adds the baseline after the trees; a constant first tree holding it (and
    a zero base score) makes the compiled sum add in scikit-learn's order, so margins are equal
    bit for bit.
    """
    import treelite
    from treelite.model_builder import Metadata, ModelBuilder, PostProcessorFunc, TreeAnnotation

    trees = treelite.sklearn.import_model(model)
    baseline = np.asarray(trees.get_header_accessor().get_field("base_scores"), dtype=np.float64).item()
    builder = ModelBuilder(threshold_type="float64", leaf_output_type="float64",
                           metadata=Metadata(num_feature=trees.num_feature, task_type="kBinaryClf",
                                             average_tree_output=False, num_target=1, num_class=[1],
                                             leaf_vector_shape=(1, 1)),
                           tree_annotation=TreeAnnotation(num_tree=1, target_id=[0], class_id=[0]),
                           postprocessor=PostProcessorFunc(name="sigmoid"), base_scores=[0.0])
    builder.start_tree()
    builder.start_node(0)
    builder.leaf(baseline)
    builder.end_node()
    builder.end_tree()
    return treelite.Model.concatenate([builder.commit(), trees])


def compile_model(model: object) -> CompiledModel | None:
    """Compile a fitted binary HistGradientBoostingClassifier; None when no C compiler is installed."""
    import tl2cgen

    compiler = c_compiler()
    if compiler is None:
        return None
    trees = _treelite_model(model)
    with tempfile.TemporaryDirectory() as folder, quiet() as log:
        path = Path(folder) / "ranker.so"
        try:
            tl2cgen.export_lib(trees, toolchain=compiler, libpath=path, params=COMPILE_PARAMS, nthread=2)
        except Exception as exc:  # a compiler that fails: say which, with its log
            raise ScoringError(say("scoring.compile_failed", compiler=compiler, error=exc, log=log()[-500:])) from exc
        library = path.read_bytes()
    return CompiledModel(library=library, sha256=hashlib.sha256(library).hexdigest(),
                         runtime=f"tl2cgen {tl2cgen.__version__} ({compiler})", num_feature=trees.num_feature)


class CompiledScorer:
    """Scores with a compiled model: the library is written once under `folder` (named by its digest) and loaded."""

    def __init__(self, compiled: CompiledModel, folder: Path) -> None:
        import tl2cgen

        self._tl2cgen = tl2cgen
        self.runtime = compiled.runtime
        path = folder / f"ranker-{compiled.sha256[:16]}.so"
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != compiled.sha256:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(compiled.library)
            os.replace(tmp, path)  # several workers may write it at once: same bytes, atomic rename
        try:
            with quiet():
                self._predictor = tl2cgen.Predictor(path, nthread=1)
        except Exception as exc:  # e.g. a model file trained on another platform
            raise ScoringError(say("scoring.load_failed", path=path, error=exc)) from exc
        if self._predictor.num_feature != compiled.num_feature:
            raise ScoringError(say("scoring.feature_count", path=path, compiled=self._predictor.num_feature,
                                   model=compiled.num_feature))
        self._lock = threading.Lock()  # a TL2cgen predictor serves one thread at a time

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """P(label = 1) for each row: the compiled margin through scikit-learn's link function."""
        if len(inputs) == 0:
            return np.empty(0)
        matrix = self._tl2cgen.DMatrix(np.ascontiguousarray(inputs, dtype=np.float64), dtype="float64")
        with self._lock:
            margin = self._predictor.predict(matrix, pred_margin=True)
        return expit(margin.reshape(-1))


def library_folder(model_path: Path) -> Path:
    """Where the compiled libraries of a model file are written: beside it, in a hidden folder."""
    return model_path.parent / ".compiled"
