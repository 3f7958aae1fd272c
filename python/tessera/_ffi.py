"""The C declarations the package uses and the loaded libtessera (cffi ABI mode).

The declarations below are copied from include/tessera/*.h. Structures are
declared field by field, in order: cffi lays them out itself, so they must
match the headers exactly (tests/test_layout.py compiles a C program that
prints sizeof/offsetof of each and compares).

The library is found, in this order, at $TESSERA_LIBRARY (a path to
libtessera.so, used by `make check` against the in-tree build), then by
the dynamic loader as libtessera.so.0 (installed by `make install` or the
libtessera0 Debian package).
"""

import os

from cffi import FFI

CDEF = r"""
typedef enum tsr_status {
    TSR_OK = 0, TSR_ERR_INVALID_ARG, TSR_ERR_NOMEM, TSR_ERR_IO, TSR_ERR_FORMAT,
    TSR_ERR_VERSION, TSR_ERR_CHECKSUM, TSR_ERR_MISMATCH, TSR_ERR_INSECURE, TSR_ERR_LEVEL,
    TSR_ERR_SCALE, TSR_ERR_KEY_MISSING, TSR_ERR_SECRET, TSR_ERR_SHAPE, TSR_ERR_UNSUPPORTED,
    TSR_ERR_RNG, TSR_ERR_NOT_FOUND, TSR_ERR_INTERNAL, TSR_STATUS_COUNT_
} tsr_status;
const char *tsr_version_string(void);
const char *tsr_strerror(tsr_status st);
const char *tsr_last_error(void);
void tsr_clear_error(void);
tsr_status tsr_init(void);
int tsr_get_num_threads(void);
void tsr_set_num_threads(int n);
tsr_status tsr_malloc_tune(unsigned flags);

/* ckks.h */
typedef struct tsr_ckks_params tsr_ckks_params;
typedef struct tsr_ckks_secret_key tsr_ckks_secret_key;
typedef struct tsr_ckks_public_key tsr_ckks_public_key;
typedef struct tsr_ckks_relin_key tsr_ckks_relin_key;
typedef struct tsr_ckks_galois_keys tsr_ckks_galois_keys;
void tsr_ckks_params_free(tsr_ckks_params *p);
size_t tsr_ckks_params_n(const tsr_ckks_params *p);
size_t tsr_ckks_params_slots(const tsr_ckks_params *p);
int tsr_ckks_params_max_level(const tsr_ckks_params *p);
void tsr_ckks_secret_key_free(tsr_ckks_secret_key *sk);
void tsr_ckks_secret_key_id(const tsr_ckks_secret_key *sk, uint8_t id[32]);
tsr_status tsr_ckks_secret_key_save(const tsr_ckks_secret_key *obj, const char *path);
tsr_status tsr_ckks_secret_key_load(tsr_ckks_secret_key **out, tsr_ckks_params *p,
                                    const char *path);
tsr_status tsr_ckks_public_key_create(tsr_ckks_public_key **out, const tsr_ckks_secret_key *sk);
void tsr_ckks_public_key_free(tsr_ckks_public_key *pk);
void tsr_ckks_public_key_id(const tsr_ckks_public_key *pk, uint8_t id[32]);
tsr_status tsr_ckks_public_key_save(const tsr_ckks_public_key *obj, const char *path);
tsr_status tsr_ckks_public_key_load(tsr_ckks_public_key **out, tsr_ckks_params *p,
                                    const char *path);
void tsr_ckks_relin_key_free(tsr_ckks_relin_key *rk);
void tsr_ckks_galois_keys_free(tsr_ckks_galois_keys *gk);
size_t tsr_ckks_galois_keys_count(const tsr_ckks_galois_keys *gk);
void tsr_ckks_bytes_free(uint8_t *buf);
tsr_status tsr_ckks_eval_keys_save(const tsr_ckks_params *p, const uint8_t key_id[32],
                                   const tsr_ckks_relin_key *rk, const tsr_ckks_galois_keys *gk,
                                   const char *path);
tsr_status tsr_ckks_eval_keys_load(tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk,
                                   uint8_t key_id[32], tsr_ckks_params *p, const char *path);

/* tile.h */
typedef struct tsr_backend tsr_backend;
typedef struct tsr_tile tsr_tile;
tsr_status tsr_backend_ckks_create(tsr_ckks_params *params, const tsr_ckks_public_key *pk,
                                   const tsr_ckks_secret_key *sk, const tsr_ckks_relin_key *rk,
                                   tsr_ckks_galois_keys *gk, tsr_backend **out);
void tsr_backend_free(tsr_backend *be);
void tsr_tile_free(tsr_tile *t);

/* graph.h */
typedef struct tsr_array {
    int rank;
    int64_t dims[8];
    size_t numel;
    double *data;
} tsr_array;
typedef struct tsr_graph tsr_graph;
tsr_status tsr_array_create(tsr_array **out, int rank, const int64_t *dims);
void tsr_array_free(tsr_array *t);
void tsr_graph_free(tsr_graph *g);
int tsr_graph_num_inputs(const tsr_graph *g);
int tsr_graph_num_outputs(const tsr_graph *g);
int tsr_graph_num_nodes(const tsr_graph *g);
const char *tsr_graph_input_name(const tsr_graph *g, int i);
const char *tsr_graph_output_name(const tsr_graph *g, int i);
tsr_status tsr_graph_value_shape(const tsr_graph *g, const char *name, int *rank, int64_t *dims);
int tsr_graph_node_kind(const tsr_graph *g, int i);
const char *tsr_graph_kind_name(int k);
const char *tsr_graph_node_name(const tsr_graph *g, int i);
tsr_status tsr_graph_run(const tsr_graph *g, const tsr_array *const *inputs,
                         tsr_array **outputs);

/* onnx.h */
tsr_status tsr_onnx_import_graph(const char *path, uint32_t flags, tsr_graph **out);
tsr_status tsr_onnx_export_graph(const tsr_graph *g, const char *path);

/* train.h */
typedef struct tsr_trainer tsr_trainer;
typedef enum tsr_train_loss {
    TSR_TRAIN_LOSS_AUTO = 0, TSR_TRAIN_LOSS_MSE, TSR_TRAIN_LOSS_CE
} tsr_train_loss;
typedef struct tsr_train_opts {
    int epochs;
    int batch;
    const char *optim;
    double lr;
    double weight_decay;
    const char *schedule;
    uint64_t seed;
    tsr_train_loss loss;
    const tsr_graph *teacher;
    double kd_temp;
    double kd_alpha;
    double range_weight;
    int max_batches;
    int progress;
} tsr_train_opts;
typedef struct tsr_train_report {
    double train_loss;
    double range_loss;
    double test_loss, test_acc;
    int steps;
} tsr_train_report;
tsr_status tsr_trainer_create(tsr_trainer **out, const tsr_graph *g);
void tsr_trainer_free(tsr_trainer *t);
tsr_status tsr_trainer_set_trainable(tsr_trainer *t, const char *name, int on);
int tsr_trainer_is_trainable(const tsr_trainer *t, const char *name);
size_t tsr_trainer_num_params(const tsr_trainer *t);
float *tsr_trainer_params(tsr_trainer *t);
tsr_status tsr_trainer_set_bound(tsr_trainer *t, const char *node, double bound);
tsr_status tsr_trainer_set_node_bound(tsr_trainer *t, int i, double bound);
tsr_status tsr_trainer_forward(tsr_trainer *t, const tsr_array *x, const tsr_array **y);
void tsr_trainer_track_ranges(tsr_trainer *t, int on, int reset);
tsr_status tsr_trainer_node_range(const tsr_trainer *t, int i, double *lo, double *hi);
tsr_status tsr_trainer_node_outside(const tsr_trainer *t, int i, uint64_t *outside,
                                    uint64_t *count);
tsr_status tsr_trainer_node_bound(const tsr_trainer *t, int i, double *lo, double *hi);
tsr_status tsr_trainer_graph(const tsr_trainer *t, tsr_graph **out);
void tsr_train_opts_default(tsr_train_opts *o);
tsr_status tsr_trainer_fit(tsr_trainer *t, const tsr_train_opts *o, const tsr_array *x,
                           const tsr_array *y, const tsr_array *xt, const tsr_array *yt,
                           tsr_train_report *rep);
tsr_status tsr_trainer_evaluate(tsr_trainer *t, tsr_train_loss loss, const tsr_array *x,
                                const tsr_array *y, int batch, double *mean_loss, double *acc);
typedef struct tsr_heify_opts {
    int degree;
    double margin;
    int fold_bn;
    int batch;
} tsr_heify_opts;
typedef struct tsr_heify_act {
    char node[64];
    int was;
    double lo, hi, bound;
} tsr_heify_act;
typedef struct tsr_heify_report {
    int n_acts;
    tsr_heify_act acts[64];
    int folded;
    int maxpools;
} tsr_heify_report;
void tsr_heify_opts_default(tsr_heify_opts *o);
tsr_status tsr_heify_graph(const tsr_graph *g, const tsr_array *calib, const tsr_heify_opts *o,
                           tsr_graph **student, tsr_heify_report *rep);

/* nn.h */
typedef struct tsr_nn_model tsr_nn_model;
typedef struct tsr_nn_plan tsr_nn_plan;
typedef struct tsr_nn_runner tsr_nn_runner;
typedef struct tsr_nn_import_opts {
    int n_approx;
    const char *approx[15];
    int approx_relu_degree;
    double approx_relu_range;
    int no_simplify;
} tsr_nn_import_opts;
typedef enum tsr_nn_packing {
    TSR_NN_PACK_AUTO = 0, TSR_NN_PACK_BATCH = 1, TSR_NN_PACK_TILED = 2
} tsr_nn_packing;
typedef struct tsr_nn_compile_opts {
    int batch;
    int security;
    uint32_t ckks_flags;
    tsr_nn_packing packing;
    int log_n;
    int min_log_n;
    int max_log_n;
    int scale_bits;
    int output_bits;
    const char *profile;
    double max_memory_mib;
    void *log;
    const double *calib;
    int calib_n;
    double min_bits;
    double max_precision_trade;
} tsr_nn_compile_opts;
void tsr_nn_import_opts_default(tsr_nn_import_opts *o);
tsr_status tsr_nn_import_onnx(const char *path, const tsr_nn_import_opts *o, tsr_nn_model **out,
                              char **report);
tsr_status tsr_nn_model_from_graph(const tsr_graph *g, const tsr_nn_import_opts *o,
                                   tsr_nn_model **out, char **report);
void tsr_nn_model_free(tsr_nn_model *m);
void tsr_nn_string_free(char *s);
int64_t tsr_nn_model_input_size(const tsr_nn_model *m);
int64_t tsr_nn_model_output_size(const tsr_nn_model *m);
void tsr_nn_model_input_shape(const tsr_nn_model *m, int *c, int *h, int *w);
tsr_status tsr_nn_model_forward(const tsr_nn_model *m, const double *x, int batch, double *out);
void tsr_nn_compile_opts_default(tsr_nn_compile_opts *o);
tsr_status tsr_nn_compile(const tsr_nn_model *m, const tsr_nn_compile_opts *o, tsr_nn_plan **out);
void tsr_nn_plan_free(tsr_nn_plan *p);
const tsr_nn_model *tsr_nn_plan_model(const tsr_nn_plan *p);
int tsr_nn_plan_batch(const tsr_nn_plan *p);
tsr_status tsr_nn_plan_params(const tsr_nn_plan *p, tsr_ckks_params **out);
double tsr_nn_plan_predicted_seconds(const tsr_nn_plan *p);
double tsr_nn_plan_predicted_mib(const tsr_nn_plan *p);
void tsr_nn_plan_id(const tsr_nn_plan *p, uint8_t id[32]);
void tsr_nn_plan_input_range(const tsr_nn_plan *p, double *lo, double *hi);
tsr_status tsr_nn_plan_save(const tsr_nn_plan *p, const char *path);
tsr_status tsr_nn_plan_load(tsr_nn_plan **out, const char *path, uint32_t ckks_flags);
int64_t tsr_nn_check_inputs(const tsr_nn_plan *p, double *x, int n, int clip, int64_t *first);
tsr_status tsr_nn_keygen(const tsr_nn_plan *p, tsr_ckks_params *params, tsr_ckks_secret_key **sk,
                         tsr_ckks_relin_key **rk, tsr_ckks_galois_keys **gk);
tsr_status tsr_nn_check_keys(const tsr_nn_plan *p, const tsr_ckks_relin_key *rk,
                             const tsr_ckks_galois_keys *gk);
tsr_status tsr_nn_encrypt(const tsr_nn_plan *p, tsr_backend *be, const double *x, int n,
                          tsr_tile **out);
tsr_status tsr_nn_decrypt(const tsr_nn_plan *p, const tsr_tile *t, int n, double *out);
int tsr_nn_check_outputs(const tsr_nn_plan *p, const tsr_tile *t, const double *out, int n,
                         uint8_t *valid, double *headroom);
tsr_status tsr_nn_runner_create(const tsr_nn_plan *p, tsr_backend *be, tsr_nn_runner **out);
void tsr_nn_runner_free(tsr_nn_runner *r);
tsr_backend *tsr_nn_runner_backend(tsr_nn_runner *r);
tsr_status tsr_nn_run(tsr_nn_runner *r, const tsr_tile *in, tsr_tile **out, void *stats);
typedef enum tsr_nn_ct_role { TSR_NN_CT_INPUT = 1, TSR_NN_CT_OUTPUT = 2 } tsr_nn_ct_role;
tsr_status tsr_nn_ct_save(const tsr_nn_plan *p, const tsr_tile *t, tsr_nn_ct_role role, int n,
                          const uint8_t key_id[32], const char *path);
tsr_status tsr_nn_ct_load(const tsr_nn_plan *p, tsr_backend *be, tsr_nn_ct_role role,
                          const char *path, const uint8_t *key_id, tsr_tile **out, int *n);

/* serve.h */
typedef struct tsr_client_opts {
    const char *server;
    int retries;
    double max_wait;
    long timeout;
    const char *ca_file;
    int progress;
} tsr_client_opts;
void tsr_client_opts_default(tsr_client_opts *o);
tsr_status tsr_client_put_keys(const tsr_client_opts *o, const char *keys_path,
                               const uint8_t *plan_id, char hash[65]);
tsr_status tsr_client_infer(const tsr_client_opts *o, const uint8_t plan_id[32],
                            const char *keys_hash, const char *in_path, const char *out_path,
                            int *unknown_keys);
tsr_status tsr_client_file_hash(const char *path, char hash[65]);
"""

# Structures whose layout tests/test_layout.py checks against the C headers.
STRUCTS = ("tsr_array", "tsr_nn_import_opts", "tsr_nn_compile_opts", "tsr_client_opts",
           "tsr_train_opts", "tsr_train_report", "tsr_heify_opts", "tsr_heify_act",
           "tsr_heify_report")

TSR_CKKS_ALLOW_INSECURE_PARAMETERS = 0x1
TSR_ONNX_KEEP_NON_POLYNOMIAL = 0x1
TSR_MALLOC_KEEP_FREED = 0x1
TSR_MALLOC_ONE_ARENA = 0x2
KEY_ID_BYTES = 32  # TSR_CKKS_KEY_ID_BYTES

ffi = FFI()
ffi.cdef(CDEF)


# Never unloaded: at interpreter exit cffi closes the library, and with it went libgomp (loaded
# for libtessera alone) while its idle worker threads still ran its code: a SIGSEGV after the
# script's last line (examples/encrypted_inference.py --quick: 1 run in ~10-25 under load).
_FLAGS = ffi.RTLD_NOW | ffi.RTLD_NODELETE


def _open():
    path = os.environ.get("TESSERA_LIBRARY")
    if path:
        return ffi.dlopen(path, _FLAGS)
    try:
        return ffi.dlopen("libtessera.so.0", _FLAGS)
    except OSError as e:
        raise ImportError(
            "tessera: cannot load libtessera.so.0 (%s); install the library (make install, or "
            "the libtessera0 package) or set TESSERA_LIBRARY to the path of libtessera.so" % e
        ) from None


lib = _open()
