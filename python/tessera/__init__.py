"""Tessera for Python: encrypted inference over CKKS (docs/PYTHON.md).

The flow mirrors pyhelayers' (compile -> keys -> encrypt -> predict ->
decrypt)::

    import numpy as np, tessera

    model = tessera.Model.from_onnx("net.onnx")          # model owner
    plan = tessera.compile(model, batch=4)               # CKKS parameters + packing
    keys = tessera.KeyPair(plan)                         # client: secret + evaluation keys
    ct = tessera.encrypt(plan, keys, x)                  # x: np.ndarray (n, ...) -> ciphertexts
    out = tessera.infer(plan, keys.eval_keys(), ct)      # server side, here in-process
    out = tessera.Server("http://127.0.0.1:8480").infer(plan, keys.eval_keys(), ct)
    y = tessera.decrypt(plan, keys, out)                 # np.ndarray (n, outputs)

A failing call raises TesseraError (or a subclass) carrying Tessera's own
message (tsr_last_error), the one the command line prints. The secret key
never leaves a KeyPair unless saved explicitly (mode 0600); the evaluation
keys (EvalKeys) hold no secret and are what a server gets.

Thread-safety: objects may be used from one thread at a time.
"""

import os
import tempfile

import numpy as np

from ._ffi import KEY_ID_BYTES, TSR_CKKS_ALLOW_INSECURE_PARAMETERS, TSR_ONNX_KEEP_NON_POLYNOMIAL
from ._ffi import TSR_MALLOC_KEEP_FREED, TSR_MALLOC_ONE_ARENA
from ._ffi import ffi, lib

__all__ = [
    "TesseraError", "FormatError", "MismatchError", "SecretKeyError", "UnsupportedError",
    "NotFoundError", "IOError_", "version", "set_threads", "tune_malloc", "Model", "Plan", "compile",
    "KeyPair", "EvalKeys", "Ciphertext", "encrypt", "decrypt", "infer", "Runner", "Server",
    "Graph", "Trainer", "train", "heify",
]

__version__ = "0.1.0"


# ---- errors ------------------------------------------------------------------------------


class TesseraError(RuntimeError):
    """A Tessera call failed. .status is the tsr_status code, .code its short name
    (tsr_strerror), .detail Tessera's message (tsr_last_error)."""

    def __init__(self, status, detail, context=None):
        self.status = int(status)
        self.code = ffi.string(lib.tsr_strerror(status)).decode()
        self.detail = detail
        msg = "%s: %s" % (self.code, detail) if detail else self.code
        if context:
            msg = "%s: %s" % (context, msg)
        super().__init__(msg)


class FormatError(TesseraError):
    """Malformed, truncated, corrupted input or an unsupported format version."""


class MismatchError(TesseraError):
    """Objects made for different parameters, keys or plans."""


class SecretKeyError(TesseraError):
    """A secret key where only public material is allowed."""


class UnsupportedError(TesseraError):
    """A valid request this build or this model cannot do (e.g. a non-polynomial node)."""


class NotFoundError(TesseraError):
    """A named item (file, preset, node, server-side keys) does not exist."""


class IOError_(TesseraError, OSError):
    """A read/write/open or a connection failed."""


_BY_STATUS = {
    lib.TSR_ERR_FORMAT: FormatError,
    lib.TSR_ERR_VERSION: FormatError,
    lib.TSR_ERR_CHECKSUM: FormatError,
    lib.TSR_ERR_MISMATCH: MismatchError,
    lib.TSR_ERR_KEY_MISSING: MismatchError,
    lib.TSR_ERR_SECRET: SecretKeyError,
    lib.TSR_ERR_UNSUPPORTED: UnsupportedError,
    lib.TSR_ERR_NOT_FOUND: NotFoundError,
    lib.TSR_ERR_IO: IOError_,
}


def _check(st, context=None):
    if st != lib.TSR_OK:
        detail = ffi.string(lib.tsr_last_error()).decode(errors="replace")
        lib.tsr_clear_error()
        raise _BY_STATUS.get(st, TesseraError)(st, detail, context)


def _path(p):
    return os.fsencode(p)


def version():
    """Version of the loaded libtessera ("0.1.0")."""
    return ffi.string(lib.tsr_version_string()).decode()


def set_threads(n):
    """OpenMP threads Tessera uses (n >= 1)."""
    if int(n) < 1:
        raise ValueError("set_threads: n must be >= 1, not %r" % (n,))
    lib.tsr_set_num_threads(int(n))


def tune_malloc(keep_freed=True, one_arena=True):
    """Opt in to the allocator settings the `tessera` command runs with (tsr_malloc_tune):
    keep_freed keeps freed memory in the heap for reuse (no mmap per large block, no trimming:
    the process keeps its peak memory), one_arena gives every thread one malloc arena. They
    spare bootstrapping its page faults (13-18 % of its CPU time at N = 2^16: docs/BENCHMARKS.md,
    "Zen 5 with AVX-512 IFMA: where the time goes") and inference some (at N = 2^13: 7 % fewer
    faults in one batch, 19 % in six, CPU time within the spread for one batch and about 2 % less
    over six; docs/BENCHMARKS.md, "The allocator through the library"). The
    whole Python process is affected, and for good: call it once, first thing, before other
    threads start. Raises UnsupportedError when glibc's mallopt is unavailable or refuses (a
    non-glibc C library, AddressSanitizer); an allocator interposed without mallopt
    (jemalloc/tcmalloc via LD_PRELOAD) is not detected and the call returns without effect.
    Importing tessera changes nothing."""
    flags = 0
    if keep_freed:
        flags |= TSR_MALLOC_KEEP_FREED
    if one_arena:
        flags |= TSR_MALLOC_ONE_ARENA
    _check(lib.tsr_malloc_tune(flags), "tune_malloc")


_check(lib.tsr_init(), "initialising libtessera")


def _samples(x, per_sample, what):
    """x as a C-contiguous float64 (n, per_sample) array."""
    a = np.array(x, dtype=np.float64, order="C", copy=True)
    if a.ndim == 0:
        raise ValueError("%s: an array of samples is needed, not a scalar" % what)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    n = a.shape[0]
    if a.size != n * per_sample:
        raise ValueError(
            "%s: each sample must have %d values (the model's input size), but the array of "
            "shape %s has %d per sample" % (what, per_sample, a.shape, a.size // max(n, 1))
        )
    return a.reshape(n, per_sample)


class _TempDir:
    """A private (0700) temporary directory, removed with its files."""

    def __init__(self):
        self._d = tempfile.TemporaryDirectory(prefix="tessera-")

    def path(self, name):
        return os.path.join(self._d.name, name)

    def close(self):
        self._d.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ---- models and plans --------------------------------------------------------------------


class Model:
    """An ONNX network imported for encrypted inference (tsr_nn_model): weights in
    doubles, simplified for CKKS, with a plaintext reference executor."""

    def __init__(self, ptr, report=None):
        self._ptr = ptr
        self.report = report  # notes of the importer (lossy approximations, rewrites), or None

    @classmethod
    def _import(cls, call, arg, approx_relu_degree, approx_relu_range, context):
        o = ffi.new("tsr_nn_import_opts *")
        lib.tsr_nn_import_opts_default(o)
        o.approx_relu_degree = int(approx_relu_degree)
        if approx_relu_range is not None:
            o.approx_relu_range = float(approx_relu_range)
        out = ffi.new("tsr_nn_model **")
        rep = ffi.new("char **")
        st = call(arg, o, out, rep)
        report = ffi.string(rep[0]).decode(errors="replace") if rep[0] != ffi.NULL else None
        lib.tsr_nn_string_free(rep[0])
        if st != lib.TSR_OK and report:
            lib.tsr_clear_error()
            raise _BY_STATUS.get(st, TesseraError)(st, report, context)
        _check(st, context)
        return cls(ffi.gc(out[0], lib.tsr_nn_model_free), report)

    @classmethod
    def from_onnx(cls, path, approx_relu_degree=0, approx_relu_range=None):
        """Import an ONNX file. Unsupported operators raise UnsupportedError whose message
        lists every one with a hint; approx_relu_degree=D (1..8) replaces ReLU by a
        least-squares polynomial (lossy)."""
        return cls._import(lib.tsr_nn_import_onnx, _path(path), approx_relu_degree,
                           approx_relu_range, "importing %s" % path)

    @classmethod
    def from_graph(cls, graph, approx_relu_degree=0, approx_relu_range=None):
        """A Graph (e.g. Trainer.graph or heify's student) lowered for encrypted inference,
        with the same rules and report as from_onnx."""
        if not isinstance(graph, Graph):
            raise TypeError("Model.from_graph: a tessera.Graph is needed")
        return cls._import(lib.tsr_nn_model_from_graph, graph._ptr, approx_relu_degree,
                           approx_relu_range, "lowering the graph")

    @property
    def input_size(self):
        return int(lib.tsr_nn_model_input_size(self._ptr))

    @property
    def output_size(self):
        return int(lib.tsr_nn_model_output_size(self._ptr))

    @property
    def input_shape(self):
        """(channels, height, width) of one sample."""
        c, h, w = ffi.new("int *"), ffi.new("int *"), ffi.new("int *")
        lib.tsr_nn_model_input_shape(self._ptr, c, h, w)
        return (c[0], h[0], w[0])

    def forward(self, x):
        """Plaintext reference inference in doubles: x (n, input) -> (n, outputs)."""
        a = _samples(x, self.input_size, "forward")
        n = a.shape[0]
        out = np.empty((n, self.output_size), dtype=np.float64)
        _check(
            lib.tsr_nn_model_forward(
                self._ptr, ffi.cast("double *", a.ctypes.data), n,
                ffi.cast("double *", out.ctypes.data),
            ),
            "plaintext inference",
        )
        return out


_PACKINGS = {"auto": 0, "batch": 1, "tiled": 2}


class Plan:
    """A compiled model (tsr_nn_plan): the network plus its CKKS parameters, packing,
    levels and rotation keys. Immutable; save it, ship it to the server."""

    def __init__(self, ptr, insecure=False):
        self._ptr = ptr
        self._flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS if insecure else 0
        self.model = Model(lib.tsr_nn_plan_model(ptr))  # borrowed: lives as long as the plan
        self.model._plan = self

    @classmethod
    def load(cls, path, insecure=False):
        """Read a plan file (tessera compile / Plan.save). insecure=True accepts test-only
        parameters below 128-bit security."""
        out = ffi.new("tsr_nn_plan **")
        flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS if insecure else 0
        _check(lib.tsr_nn_plan_load(out, _path(path), flags), "loading the plan %s" % path)
        return cls(ffi.gc(out[0], lib.tsr_nn_plan_free), insecure)

    def save(self, path):
        _check(lib.tsr_nn_plan_save(self._ptr, _path(path)), "saving the plan")

    @property
    def batch(self):
        """Largest number of samples one inference takes."""
        return int(lib.tsr_nn_plan_batch(self._ptr))

    @property
    def id(self):
        """BLAKE2b-256 of the plan, hexadecimal (the server's plan id)."""
        return bytes(self._id_bytes()).hex()

    def _id_bytes(self):
        buf = ffi.new("uint8_t[32]")
        lib.tsr_nn_plan_id(self._ptr, buf)
        return ffi.buffer(buf)[:]

    @property
    def input_range(self):
        lo, hi = ffi.new("double *"), ffi.new("double *")
        lib.tsr_nn_plan_input_range(self._ptr, lo, hi)
        return (lo[0], hi[0])

    @property
    def predicted_seconds(self):
        return float(lib.tsr_nn_plan_predicted_seconds(self._ptr))

    @property
    def predicted_mib(self):
        return float(lib.tsr_nn_plan_predicted_mib(self._ptr))

    def _params(self):
        out = ffi.new("tsr_ckks_params **")
        _check(lib.tsr_nn_plan_params(self._ptr, out), "making the plan's CKKS parameters")
        return ffi.gc(out[0], lib.tsr_ckks_params_free)

    @property
    def ring_degree(self):
        return int(lib.tsr_ckks_params_n(self._params()))

    def forward(self, x):
        """Plaintext reference prediction of the plan's model."""
        return self.model.forward(x)


def compile(model, batch=1, packing="auto", log_n=0, min_log_n=None, max_log_n=None,
            calibration=None, profile=None, max_memory_mib=None, insecure=False,
            min_bits=None, max_precision_trade=None):
    """Compile a Model (or an ONNX path) for encrypted inference of `batch` samples at a
    time. The optimizer picks packing and CKKS parameters (deterministically) unless
    packing ("batch", "tiled") or log_n (ring degree 2^log_n) force them. calibration:
    samples (n, input) that set the plan's input range. min_bits: the precision floor
    (default 10 bits, 0: no check; see tsr_nn_compile_opts.min_bits). max_precision_trade:
    whole bits of scale (0 to 20) the compiler may give up for a faster CKKS chain, taken
    when its estimate is at most that + 0.5 bits below the plan of trade 0 (default 2,
    0: always the largest scale; tsr_nn_compile_opts.max_precision_trade). insecure=True
    allows parameters below 128-bit security (tests only)."""
    if not isinstance(model, Model):
        model = Model.from_onnx(model)
    if packing not in _PACKINGS:
        raise ValueError("compile: packing must be one of auto, batch, tiled, not %r" % (packing,))
    o = ffi.new("tsr_nn_compile_opts *")
    lib.tsr_nn_compile_opts_default(o)
    o.batch = int(batch)
    o.packing = _PACKINGS[packing]
    o.log_n = int(log_n)
    if min_log_n is not None:
        o.min_log_n = int(min_log_n)
    if max_log_n is not None:
        o.max_log_n = int(max_log_n)
    if max_memory_mib is not None:
        o.max_memory_mib = float(max_memory_mib)
    if min_bits is not None:
        o.min_bits = float(min_bits)
    if max_precision_trade is not None:
        o.max_precision_trade = float(max_precision_trade)
    if insecure:
        o.ckks_flags = TSR_CKKS_ALLOW_INSECURE_PARAMETERS
    keep = []
    if profile is not None:
        keep.append(ffi.new("char[]", _path(profile)))
        o.profile = keep[-1]
    if calibration is not None:
        c = _samples(calibration, model.input_size, "compile: calibration")
        keep.append(c)
        o.calib = ffi.cast("double *", c.ctypes.data)
        o.calib_n = c.shape[0]
    out = ffi.new("tsr_nn_plan **")
    _check(lib.tsr_nn_compile(model._ptr, o, out), "compiling")
    return Plan(ffi.gc(out[0], lib.tsr_nn_plan_free), insecure)


# ---- keys --------------------------------------------------------------------------------


class EvalKeys:
    """Evaluation keys (relinearization + the plan's rotations) in their file format:
    no secret, what a server gets. .data is the file's bytes, .id the key-set id."""

    def __init__(self, data):
        self.data = bytes(data)

    @classmethod
    def load(cls, path):
        return cls(_read(path))

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)

    def __len__(self):
        return len(self.data)


class KeyPair:
    """Client keys for a plan (tsr_nn_keygen): a fresh secret key (wiped when freed) and
    exactly the evaluation keys the plan needs."""

    def __init__(self, plan, _sk=None, _ev=None):
        self.plan = plan
        self._params = plan._params()
        if _sk is None:
            sk = ffi.new("tsr_ckks_secret_key **")
            rk = ffi.new("tsr_ckks_relin_key **")
            gk = ffi.new("tsr_ckks_galois_keys **")
            _check(lib.tsr_nn_keygen(plan._ptr, self._params, sk, rk, gk), "generating keys")
            self._sk = ffi.gc(sk[0], lib.tsr_ckks_secret_key_free)
            rkp = ffi.gc(rk[0], lib.tsr_ckks_relin_key_free) if rk[0] != ffi.NULL else ffi.NULL
            gkp = ffi.gc(gk[0], lib.tsr_ckks_galois_keys_free) if gk[0] != ffi.NULL else ffi.NULL
            with _TempDir() as d:
                p = d.path("keys.evk")
                _check(
                    lib.tsr_ckks_eval_keys_save(self._params, self._key_id(), rkp, gkp, _path(p)),
                    "writing the evaluation keys",
                )
                self._ev = EvalKeys(_read(p))
            del rkp, gkp  # the secret key stays; evaluation keys live on as bytes
        else:
            self._sk, self._ev = _sk, _ev

    def _key_id(self):
        buf = ffi.new("uint8_t[%d]" % KEY_ID_BYTES)
        lib.tsr_ckks_secret_key_id(self._sk, buf)
        return buf

    @property
    def id(self):
        """The key-set id (hexadecimal) every file of this keygen run records."""
        return ffi.buffer(self._key_id())[:].hex()

    def eval_keys(self):
        """The evaluation keys (public material) for the server."""
        return self._ev

    def save(self, secret_path, eval_path):
        """Write the secret key (mode 0600, never to a server) and the evaluation keys."""
        _check(lib.tsr_ckks_secret_key_save(self._sk, _path(secret_path)), "saving the secret key")
        self._ev.save(eval_path)

    @classmethod
    def load(cls, plan, secret_path, eval_path):
        params = plan._params()
        sk = ffi.new("tsr_ckks_secret_key **")
        _check(lib.tsr_ckks_secret_key_load(sk, params, _path(secret_path)),
               "loading the secret key (made for this plan?)")
        return cls(plan, ffi.gc(sk[0], lib.tsr_ckks_secret_key_free), EvalKeys.load(eval_path))


# ---- ciphertexts -------------------------------------------------------------------------


class Ciphertext:
    """An encrypted batch (a ciphertext set: plan id, key-set id, role, samples, tile
    tensor) in its file format, as made by `tessera encrypt` / `tessera infer`."""

    def __init__(self, data, samples, output):
        self.data = bytes(data)
        self.samples = samples  # number of samples it holds
        self.output = output  # True for a network output

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)

    @classmethod
    def load(cls, path, plan, output=None):
        """Read a ciphertext file; output=None accepts either role."""
        data = _read(path)
        roles = [True, False] if output is None else [bool(output)]
        err = None
        for r in roles:
            try:
                n = _ct_samples(plan, data, r)
                return cls(data, n, r)
            except TesseraError as e:
                err = err or e
        raise err

    def __len__(self):
        return len(self.data)


def _ct_load(plan, be, data, output, key_id, d):
    p = d.path("in.ct")
    _write(p, data)
    t = ffi.new("tsr_tile **")
    n = ffi.new("int *")
    role = lib.TSR_NN_CT_OUTPUT if output else lib.TSR_NN_CT_INPUT
    _check(lib.tsr_nn_ct_load(plan._ptr, be, role, _path(p), key_id, t, n),
           "reading the encrypted %s" % ("outputs" if output else "inputs"))
    return ffi.gc(t[0], lib.tsr_tile_free), n[0]


def _ct_samples(plan, data, output):
    be = _client_backend(plan, None)
    with _TempDir() as d:
        t, n = _ct_load(plan, be, data, output, ffi.NULL, d)
        ffi.release(t)
    return n


def _client_backend(plan, keys):
    be = ffi.new("tsr_backend **")
    sk = keys._sk if keys is not None else ffi.NULL
    params = keys._params if keys is not None else plan._params()
    _check(lib.tsr_backend_ckks_create(params, ffi.NULL, sk, ffi.NULL, ffi.NULL, be),
           "setting up CKKS")
    # the backend borrows the parameters and the key: they outlive it
    return ffi.gc(be[0], lambda b, keep=(params, keys): lib.tsr_backend_free(b))


def encrypt(plan, keys, x, clip=False):
    """Pack and encrypt samples x (n <= plan.batch; shape (n, input) or (n, C, H, W),
    preprocessed like the model's input) under the KeyPair's secret key. Values outside
    the plan's input range raise ValueError (clip=True clips them instead)."""
    a = _samples(x, plan.model.input_size, "encrypt")
    n = a.shape[0]
    if n > plan.batch:
        raise ValueError("encrypt: %d samples, more than the plan's batch of %d; compile with "
                         "batch=%d or encrypt fewer" % (n, plan.batch, n))
    first = ffi.new("int64_t *")
    xp = ffi.cast("double *", a.ctypes.data)
    bad = lib.tsr_nn_check_inputs(plan._ptr, xp, n, 1 if clip else 0, first)
    if bad and not clip:
        lo, hi = plan.input_range
        i = first[0]
        raise ValueError(
            "encrypt: %d value%s outside the plan's input range [%g, %g] (first: sample %d, "
            "index %d, value %g); CKKS would decrypt garbage: scale the inputs like the "
            "calibration data, or pass clip=True"
            % (bad, "" if bad == 1 else "s", lo, hi, i // a.shape[1], i % a.shape[1],
               a.reshape(-1)[i])
        )
    be = _client_backend(plan, keys)
    t = ffi.new("tsr_tile **")
    _check(lib.tsr_nn_encrypt(plan._ptr, be, xp, n, t), "encrypting")
    tile = t[0]
    try:
        with _TempDir() as d:
            p = d.path("in.ct")
            _check(lib.tsr_nn_ct_save(plan._ptr, tile, lib.TSR_NN_CT_INPUT, n, keys._key_id(),
                                      _path(p)), "writing the ciphertexts")
            data = _read(p)
    finally:
        lib.tsr_tile_free(tile)
    return Ciphertext(data, n, False)


def decrypt(plan, keys, ct):
    """Decrypt and unpack an output Ciphertext -> np.ndarray (samples, outputs). Samples
    whose outputs reached the ciphertexts' headroom (inputs outside the plan's range
    decrypt to garbage) come back as rows of NaN."""
    if not ct.output:
        raise ValueError("decrypt: this ciphertext holds encrypted inputs, not outputs; run "
                         "infer first")
    be = _client_backend(plan, keys)
    with _TempDir() as d:
        t, n = _ct_load(plan, be, ct.data, True, keys._key_id(), d)
    out = np.empty((n, plan.model.output_size), dtype=np.float64)
    op = ffi.cast("double *", out.ctypes.data)
    try:
        _check(lib.tsr_nn_decrypt(plan._ptr, t, n, op), "decrypting")
        valid = ffi.new("uint8_t[]", max(n, 1))
        lib.tsr_nn_check_outputs(plan._ptr, t, op, n, valid, ffi.NULL)
    finally:
        ffi.release(t)
    for i in range(n):
        if not valid[i]:
            out[i, :] = np.nan
    return out


# ---- inference ---------------------------------------------------------------------------


class Runner:
    """Server side in-process: the plan prepared with evaluation keys only (weights
    encoded once; reuse it for many batches)."""

    def __init__(self, plan, eval_keys):
        self.plan = plan
        self._params = plan._params()
        rk = ffi.new("tsr_ckks_relin_key **")
        gk = ffi.new("tsr_ckks_galois_keys **")
        self._key_id = ffi.new("uint8_t[%d]" % KEY_ID_BYTES)
        with _TempDir() as d:
            p = d.path("keys.evk")
            _write(p, eval_keys.data)
            _check(lib.tsr_ckks_eval_keys_load(rk, gk, self._key_id, self._params, _path(p)),
                   "loading the evaluation keys")
        self._rk = ffi.gc(rk[0], lib.tsr_ckks_relin_key_free) if rk[0] != ffi.NULL else ffi.NULL
        self._gk = ffi.gc(gk[0], lib.tsr_ckks_galois_keys_free) if gk[0] != ffi.NULL else ffi.NULL
        _check(lib.tsr_nn_check_keys(plan._ptr, self._rk, self._gk), "checking the evaluation keys")
        be = ffi.new("tsr_backend **")
        _check(lib.tsr_backend_ckks_create(self._params, ffi.NULL, ffi.NULL, self._rk, self._gk,
                                           be), "preparing the plan")
        # the backend borrows the parameters and keys, the runner the plan and the backend
        self._be = ffi.gc(be[0], lambda b, keep=(self._params, self._rk, self._gk):
                          lib.tsr_backend_free(b))
        r = ffi.new("tsr_nn_runner **")
        _check(lib.tsr_nn_runner_create(plan._ptr, self._be, r), "preparing the plan")
        self._runner = ffi.gc(r[0], lambda p, keep=(self._be, plan): lib.tsr_nn_runner_free(p))

    def infer(self, ct):
        """Encrypted inputs -> encrypted outputs (Ciphertext)."""
        if ct.output:
            raise ValueError("infer: this ciphertext holds outputs, not encrypted inputs")
        rbe = lib.tsr_nn_runner_backend(self._runner)
        with _TempDir() as d:
            x, n = _ct_load(self.plan, rbe, ct.data, False, self._key_id, d)
            y = ffi.new("tsr_tile **")
            try:
                _check(lib.tsr_nn_run(self._runner, x, y, ffi.NULL), "running the network")
            finally:
                ffi.release(x)
            try:
                p = d.path("out.ct")
                _check(lib.tsr_nn_ct_save(self.plan._ptr, y[0], lib.TSR_NN_CT_OUTPUT, n,
                                          self._key_id, _path(p)), "writing the outputs")
                data = _read(p)
            finally:
                lib.tsr_tile_free(y[0])
        return Ciphertext(data, n, True)


def infer(plan, eval_keys, ct):
    """Run the plan on encrypted inputs with the evaluation keys, in this process (what
    `tessera infer` does). For many batches keep a Runner."""
    return Runner(plan, eval_keys).infer(ct)


class Server:
    """A `tessera serve` endpoint (libcurl client): keys are uploaded once per server
    (only when it lacks them), 503 answers retried after Retry-After."""

    def __init__(self, url, retries=8, timeout=0, ca_file=None, progress=False):
        self.url = url
        self.retries = int(retries)
        self.timeout = int(timeout)
        self.ca_file = ca_file
        self.progress = bool(progress)

    def _opts(self, keep):
        o = ffi.new("tsr_client_opts *")
        lib.tsr_client_opts_default(o)
        keep.append(ffi.new("char[]", self.url.encode()))
        o.server = keep[-1]
        o.retries = self.retries
        o.timeout = self.timeout
        o.progress = 1 if self.progress else 0
        if self.ca_file:
            keep.append(ffi.new("char[]", _path(self.ca_file)))
            o.ca_file = keep[-1]
        return o

    def put_keys(self, plan, eval_keys):
        """Upload evaluation keys (checked against the plan); returns their hash."""
        keep = []
        o = self._opts(keep)
        h = ffi.new("char[65]")
        pid = ffi.new("uint8_t[32]", plan._id_bytes())
        with _TempDir() as d:
            p = d.path("keys.evk")
            _write(p, eval_keys.data)
            _check(lib.tsr_client_put_keys(o, _path(p), pid, h), "uploading the keys")
        return ffi.string(h).decode()

    def infer(self, plan, eval_keys, ct):
        """Encrypted inputs -> encrypted outputs computed by the server."""
        if ct.output:
            raise ValueError("infer: this ciphertext holds outputs, not encrypted inputs")
        keep = []
        o = self._opts(keep)
        pid = ffi.new("uint8_t[32]", plan._id_bytes())
        h = ffi.new("char[65]")
        unknown = ffi.new("int *")
        with _TempDir() as d:
            kp, ip, op = d.path("keys.evk"), d.path("in.ct"), d.path("out.ct")
            _write(kp, eval_keys.data)
            _write(ip, ct.data)
            _check(lib.tsr_client_file_hash(_path(kp), h), "hashing the keys")
            st = lib.tsr_client_infer(o, pid, h, _path(ip), _path(op), unknown)
            if st != lib.TSR_OK and unknown[0]:
                lib.tsr_clear_error()
                _check(lib.tsr_client_put_keys(o, _path(kp), pid, h), "uploading the keys")
                st = lib.tsr_client_infer(o, pid, h, _path(ip), _path(op), unknown)
            _check(st, "inference on %s" % self.url)
            data = _read(op)
        return Ciphertext(data, ct.samples, True)

    def plans(self):
        """GET /v1/plans: the server's plans (list of dicts)."""
        import json
        import urllib.request

        with urllib.request.urlopen(self.url.rstrip("/") + "/v1/plans", timeout=60) as r:
            return json.loads(r.read().decode())["plans"]


# ---- the model graph ---------------------------------------------------------------------


class Graph:
    """The model graph (tessera/graph.h) of an ONNX file, run in plaintext doubles."""

    def __init__(self, ptr):
        self._ptr = ptr

    @classmethod
    def from_onnx(cls, path, non_polynomial=False):
        """Import an ONNX file. Non-polynomial operators (ReLU, softmax, ...) raise
        UnsupportedError listing each with its replacement, unless non_polynomial=True
        (plaintext only)."""
        out = ffi.new("tsr_graph **")
        flags = TSR_ONNX_KEEP_NON_POLYNOMIAL if non_polynomial else 0
        _check(lib.tsr_onnx_import_graph(_path(path), flags, out), "importing %s" % path)
        return cls(ffi.gc(out[0], lib.tsr_graph_free))

    def _names(self, count, get):
        return [ffi.string(get(self._ptr, i)).decode() for i in range(count(self._ptr))]

    @property
    def inputs(self):
        return self._names(lib.tsr_graph_num_inputs, lib.tsr_graph_input_name)

    @property
    def outputs(self):
        return self._names(lib.tsr_graph_num_outputs, lib.tsr_graph_output_name)

    @property
    def nodes(self):
        """(name, kind) of each node in execution order."""
        return [
            (ffi.string(lib.tsr_graph_node_name(self._ptr, i)).decode(),
             ffi.string(lib.tsr_graph_kind_name(lib.tsr_graph_node_kind(self._ptr, i))).decode())
            for i in range(lib.tsr_graph_num_nodes(self._ptr))
        ]

    def shape(self, name):
        """Declared shape of a value (-1: chosen at run time, e.g. the batch)."""
        rank = ffi.new("int *")
        dims = ffi.new("int64_t[8]")
        _check(lib.tsr_graph_value_shape(self._ptr, name.encode(), rank, dims),
               "shape of '%s'" % name)
        return tuple(int(dims[i]) for i in range(rank[0]))

    def run(self, *inputs, **named):
        """Run in doubles: inputs positionally (graph input order) or by name -> a list of
        np.ndarray, one per graph output."""
        names = self.inputs
        if named:
            if inputs:
                raise ValueError("run: give the inputs by position or by name, not both")
            missing = [n for n in names if n not in named]
            extra = [n for n in named if n not in names]
            if missing or extra:
                raise ValueError("run: the graph's inputs are %s (missing %s, unknown %s)"
                                 % (names, missing, extra))
            inputs = [named[n] for n in names]
        if len(inputs) != len(names):
            raise ValueError("run: the graph takes %d inputs %s, %d given"
                             % (len(names), names, len(inputs)))
        arrays = [_to_array(a, "run") for a in inputs]
        ins = ffi.new("tsr_array *[]", arrays or [ffi.NULL])
        n_out = lib.tsr_graph_num_outputs(self._ptr)
        outs = ffi.new("tsr_array *[]", max(n_out, 1))
        _check(lib.tsr_graph_run(self._ptr, ins, outs), "running the graph")
        result = []
        for i in range(n_out):
            result.append(_from_array(outs[i]))
            lib.tsr_array_free(outs[i])
        return result

    def save(self, path):
        """Write the graph as an ONNX file (opset 13; weights rounded to float32;
        polynomials as Mul/Pow/Add, read back by Graph.from_onnx and Model.from_onnx)."""
        _check(lib.tsr_onnx_export_graph(self._ptr, _path(path)), "saving the graph")

    def to_model(self, approx_relu_degree=0, approx_relu_range=None):
        """The graph as a Model for encrypted inference (compile, encrypt, ...)."""
        return Model.from_graph(self, approx_relu_degree, approx_relu_range)


def _to_array(a, what):
    """A new tsr_array (freed with its Python object) holding a copy of a as doubles."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim > 8:
        raise ValueError("%s: arrays of rank %d (at most 8)" % (what, a.ndim))
    t = ffi.new("tsr_array **")
    _check(lib.tsr_array_create(t, a.ndim, ffi.new("int64_t[]", list(a.shape) or [0])),
           "%s: allocating an array of shape %s" % (what, a.shape))
    arr = ffi.gc(t[0], lib.tsr_array_free)
    if a.size:
        ffi.memmove(arr.data, ffi.from_buffer(a), a.nbytes)
    return arr


def _from_array(o):
    """A numpy copy of a tsr_array."""
    shape = tuple(int(o.dims[k]) for k in range(o.rank))
    v = np.frombuffer(ffi.buffer(o.data, o.numel * 8), dtype=np.float64).copy()
    return v.reshape(shape)


# ---- training on the graph (tessera/train.h) --------------------------------------------

_LOSSES = {"auto": 0, "mse": 1, "ce": 2}


def _loss(loss):
    if loss not in _LOSSES:
        raise ValueError("loss must be one of %s, not %r" % (sorted(_LOSSES), loss))
    return _LOSSES[loss]


class Trainer:
    """Trains a copy of a Graph (tsr_trainer): its weights (constants read as weights:
    Conv/Gemm weights and biases, polynomial coefficients, ...) as one float32 vector,
    forward/backward of every node kind in doubles, MSE / cross-entropy / distillation
    losses, SGD / Adam. The graph needs one input and one output, batch first. A seed and
    a thread count give bitwise identical results. It keeps the last batch's activations
    (doubles) after fit / evaluate / ranges, until the next call or garbage collection."""

    def __init__(self, graph):
        if not isinstance(graph, Graph):
            raise TypeError("Trainer: a tessera.Graph is needed, not %s" % type(graph).__name__)
        out = ffi.new("tsr_trainer **")
        _check(lib.tsr_trainer_create(out, graph._ptr), "creating the trainer")
        self._ptr = ffi.gc(out[0], lib.tsr_trainer_free)

    @property
    def num_params(self):
        """Number of trainable parameters."""
        return int(lib.tsr_trainer_num_params(self._ptr))

    @property
    def params(self):
        """A copy of the parameter vector (float32, constants in graph order)."""
        n = self.num_params
        return np.frombuffer(ffi.buffer(lib.tsr_trainer_params(self._ptr), n * 4),
                             dtype=np.float32).copy()

    @params.setter
    def params(self, v):
        v = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
        if v.size != self.num_params:
            raise ValueError("params: %d values needed, not %d" % (self.num_params, v.size))
        ffi.memmove(lib.tsr_trainer_params(self._ptr), ffi.from_buffer(v), v.nbytes)

    def set_trainable(self, name, on=True):
        """Make the constant `name` trainable or fixed (NotFoundError if there is none)."""
        _check(lib.tsr_trainer_set_trainable(self._ptr, name.encode(), 1 if on else 0),
               "set_trainable('%s')" % name)

    def is_trainable(self, name):
        return bool(lib.tsr_trainer_is_trainable(self._ptr, name.encode()))

    def set_bound(self, node, bound):
        """Range-loss bound of a polynomial node's input (see range_weight in fit): the
        interval [-bound, bound]. node is the node's name, or its position in execution order
        (an int, as in ranges() and Graph.nodes): imported models may give several nodes one
        name, and such a name is refused (TesseraError) rather than guessed."""
        if isinstance(node, (int, np.integer)) and not isinstance(node, bool):
            _check(lib.tsr_trainer_set_node_bound(self._ptr, int(node), float(bound)),
                   "set_bound(%d)" % node)
            return
        if not isinstance(node, str):
            raise TypeError("set_bound: node is a name or a position, not %s"
                            % type(node).__name__)
        st = lib.tsr_trainer_set_bound(self._ptr, node.encode(), float(bound))
        if st == lib.TSR_OK:
            return
        ctx = "set_bound('%s')" % node
        detail = ffi.string(lib.tsr_last_error()).decode(errors="replace")
        lib.tsr_clear_error()
        # the shared-name case is told by the graph's names, not by the C message's wording
        if st == lib.TSR_ERR_INVALID_ARG and [n for n, _ in self.graph.nodes].count(node) > 1:
            ctx += ": pass the node's position instead (an int, as in ranges())"
        raise _BY_STATUS.get(st, TesseraError)(st, detail, ctx)

    def ranges(self, x, batch=256):
        """Run x (N, ...) through the current parameters and report, per node in execution
        order, the inputs its first input took: a list of dicts (node, kind, lo, hi, bound,
        outside, count). bound is the polynomial's valid interval (lo, hi) (a Chebyshev
        node's own, or set_bound's) or None; outside of count entries fell beyond it (0 of 0
        without a bound). What `tessera eval` prints for the activations."""
        x = np.asarray(x)
        if x.ndim < 1 or len(x) == 0:
            raise ValueError("ranges: x holds no samples")
        lib.tsr_trainer_track_ranges(self._ptr, 1, 1)
        try:
            for at in range(0, len(x), int(batch)):
                _check(lib.tsr_trainer_forward(self._ptr, _to_array(x[at:at + int(batch)],
                                                                    "ranges"), ffi.NULL),
                       "ranges")
        finally:
            lib.tsr_trainer_track_ranges(self._ptr, 0, 0)
        lo, hi = ffi.new("double *"), ffi.new("double *")
        out, cnt = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        rows = []
        for i, (name, kind) in enumerate(self.graph.nodes):
            _check(lib.tsr_trainer_node_range(self._ptr, i, lo, hi), "ranges")
            row = {"node": name, "kind": kind, "lo": lo[0], "hi": hi[0], "bound": None}
            _check(lib.tsr_trainer_node_outside(self._ptr, i, out, cnt), "ranges")
            row["outside"], row["count"] = int(out[0]), int(cnt[0])
            if lib.tsr_trainer_node_bound(self._ptr, i, lo, hi) == 0:
                row["bound"] = (lo[0], hi[0])
            else:
                lib.tsr_clear_error()
            rows.append(row)
        return rows

    def fit(self, x, y, epochs=1, batch=64, optim="adam", lr=1e-3, weight_decay=0.0,
            schedule="cosine", seed=1, loss="auto", teacher=None, kd_temp=4.0, kd_alpha=0.7,
            range_weight=0.0, max_batches=0, x_test=None, y_test=None, progress=False):
        """Train on x (N, ...) and y: labels (N,) of whole numbers for cross-entropy,
        targets of the output's shape for MSE (loss="auto" picks from y). teacher (a
        Graph): distillation (cross-entropy only). x_test, y_test: evaluated at the end.
        Returns a dict: train_loss, range_loss, test_loss, test_acc (NaN without test
        data or for MSE), steps."""
        o = ffi.new("tsr_train_opts *")
        lib.tsr_train_opts_default(o)
        keep = [ffi.new("char[]", optim.encode()), ffi.new("char[]", schedule.encode())]
        o.epochs, o.batch = int(epochs), int(batch)
        o.optim, o.schedule = keep[0], keep[1]
        o.lr, o.weight_decay = float(lr), float(weight_decay)
        o.seed, o.loss = int(seed), _loss(loss)
        if teacher is not None:
            if not isinstance(teacher, Graph):
                raise TypeError("fit: teacher must be a tessera.Graph")
            o.teacher = teacher._ptr
        o.kd_temp, o.kd_alpha = float(kd_temp), float(kd_alpha)
        o.range_weight, o.max_batches = float(range_weight), int(max_batches)
        o.progress = 1 if progress else 0
        if (x_test is None) != (y_test is None):
            raise ValueError("fit: give both x_test and y_test, or neither")
        xa, ya = _to_array(x, "fit"), _to_array(y, "fit")
        xt = _to_array(x_test, "fit") if x_test is not None else ffi.NULL
        yt = _to_array(y_test, "fit") if y_test is not None else ffi.NULL
        rep = ffi.new("tsr_train_report *")
        _check(lib.tsr_trainer_fit(self._ptr, o, xa, ya, xt, yt, rep), "training")
        return {"train_loss": rep.train_loss, "range_loss": rep.range_loss,
                "test_loss": rep.test_loss, "test_acc": rep.test_acc, "steps": rep.steps}

    def evaluate(self, x, y, loss="auto", batch=256):
        """(mean loss, accuracy) of the current parameters on x, y (accuracy NaN for MSE)."""
        ml, acc = ffi.new("double *"), ffi.new("double *")
        _check(lib.tsr_trainer_evaluate(self._ptr, _loss(loss), _to_array(x, "evaluate"),
                                        _to_array(y, "evaluate"), int(batch), ml, acc),
               "evaluating")
        return ml[0], acc[0]

    @property
    def graph(self):
        """The graph with the current parameters (a new Graph)."""
        out = ffi.new("tsr_graph **")
        _check(lib.tsr_trainer_graph(self._ptr, out), "the trained graph")
        return Graph(ffi.gc(out[0], lib.tsr_graph_free))


def train(graph, x, y, **fit_args):
    """Train a copy of graph on x, y (Trainer.fit's arguments) -> (trained Graph, report)."""
    t = Trainer(graph)
    rep = t.fit(x, y, **fit_args)
    return t.graph, rep


def heify(teacher, calib, degree=2, margin=1.0, fold_bn=True, batch=256):
    """The polynomial student of a teacher Graph (imported with non_polynomial=True):
    ReLU / sigmoid / tanh / erf become trainable Chebyshev polynomials of `degree` on the
    ranges seen on calib (N, ...) times margin, MaxPool becomes AveragePool, batch norm
    after Conv/Gemm is folded. Returns (student Graph, report): report lists each replaced
    activation as dict(node, was, lo, hi, bound) under "acts", with "folded" and
    "maxpools". Distil with Trainer(student).fit(x, labels, teacher=teacher)."""
    if not isinstance(teacher, Graph):
        raise TypeError("heify: teacher must be a tessera.Graph")
    o = ffi.new("tsr_heify_opts *")
    lib.tsr_heify_opts_default(o)
    o.degree, o.margin = int(degree), float(margin)
    o.fold_bn, o.batch = 1 if fold_bn else 0, int(batch)
    out = ffi.new("tsr_graph **")
    rep = ffi.new("tsr_heify_report *")
    _check(lib.tsr_heify_graph(teacher._ptr, _to_array(calib, "heify"), o, out, rep),
           "heify")
    student = Graph(ffi.gc(out[0], lib.tsr_graph_free))
    acts = [{"node": ffi.string(a.node).decode(errors="replace"),
             "was": ffi.string(lib.tsr_graph_kind_name(a.was)).decode(),
             "lo": a.lo, "hi": a.hi, "bound": a.bound}
            for a in rep.acts[0:min(rep.n_acts, 64)]]
    return student, {"acts": acts, "n_acts": rep.n_acts, "folded": rep.folded,
                     "maxpools": rep.maxpools}
