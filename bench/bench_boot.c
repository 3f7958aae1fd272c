/*
 * bench/bench_boot.c - `tessera bench boot`: CKKS bootstrapping end to end.
 * Prints the setup time (parameters, keys, circuit), key sizes, peak
 * memory, the latency (median of --runs >= 5 runs) with a per-stage
 * breakdown (ModRaise / CoeffsToSlots / EvalMod / SlotsToCoeffs) in wall
 * time and in the process's CPU time (which a loaded machine inflates far
 * less than the wall time; all threads' CPU time with --threads > 1), the
 * precision against the plaintext (mean, median and worst slot, in bits,
 * inputs uniform in [-1, 1] + i [-1, 1]), the level and scale left, and
 * the memory breakdown (keys per DFT factor at the levels they are made
 * for, diagonals per factor, the other keys, resident memory after each
 * setup phase, peak after each stage). Keys are level-aware unless
 * --full-keys. Record results in docs/BENCHMARKS.md with the command, commit and CPU.
 */
#include "bench.h"
#include "cli.h"
#include "core/error.h"
#include "core/progress.h"

#include "tessera.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { N_STAGES = 5, MAX_RUNS = 100, MAX_FACTORS = 16 };

/* The last stage is the real split (--real only; 0 otherwise). */
static const char *const stage_names[N_STAGES] = { "mod_raise", "coeffs_to_slots", "eval_mod",
                                                   "slots_to_coeffs", "split_real" };

typedef tsr_status (*stage_fn)(const tsr_circuits_boot *, tsr_ckks_evaluator *,
                               tsr_ckks_ciphertext *, const tsr_ckks_ciphertext *);

/* Current resident set size, MiB (/proc/self/statm; 0 where it is missing). */
static double rss_now_mib(void) {
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp) return 0;
    unsigned long long pages_total = 0, pages_rss = 0;
    int ok = fscanf(fp, "%llu %llu", &pages_total, &pages_rss) == 2;
    fclose(fp);
    long page = sysconf(_SC_PAGESIZE);
    return ok ? (double)pages_rss * (double)page / 1048576.0 : 0;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * The bootstrapping parameter set: a preset (n16-boot-ifma by default) with `left` levels for the
 * network (10 in the presets) and N = 2^log_n. n16-boot: q_0 of 61 bits, 60-bit levels (the
 * circuit's CoeffsToSlots plaintexts and EvalMod need ~60-bit scales, see docs/CIRCUITS.md),
 * 14 bootstrapping levels + `left` levels, four 61-bit special primes (dnum automatic), log2 QP
 * about 1745 at N = 2^16. n16-boot-d4: the `left` network levels are 40-bit primes at scale
 * 2^40 (a mixed chain, spec.low_levels = left) under the 14 of 60 bits, seven 61-bit special
 * primes, dnum 4, log2 QP about 1728. n16-boot-ifma: n16-boot-d4 with q_0 of 50 bits and nine
 * 49-bit special primes, below 2^50 where the IFMA kernels apply, log2 QP about 1731. All: a dense
 * ternary secret with sparse-secret encapsulation (h = 32, K = 18), under the 1772 of the 128-bit
 * table (the key back to the dense secret lives in Q_L P, the key to the sparse one over q_0 and
 * a prime of its own, below the sourced 121 bits: docs/SECURITY.md). Smaller rings (--log-n < 16,
 * quick checks) are flagged insecure.
 */
static tsr_status boot_spec(tsr_ckks_param_spec *s, const char *preset, unsigned log_n,
                            unsigned left) {
    TSR_TRY(tsr_ckks_preset_spec(preset, s));
    if (s->levels < 14 || s->log_n != 16 || s->scale_bits != 60)
        return tsr_fail(TSR_ERR_INVALID_ARG,
                        "preset %s is not a bootstrapping set (N = 2^16, 60-bit scale, at least "
                        "14 levels): use n16-boot, n16-boot-d4 or n16-boot-ifma",
                        preset);
    s->log_n = log_n;
    s->levels = 14 + left;
    if (s->low_levels) s->low_levels = left;
    s->flags = log_n < 16 ? TSR_CKKS_ALLOW_INSECURE_PARAMETERS : 0;
    return TSR_OK;
}

typedef struct result {
    double setup_s, keygen_s, circuit_s;
    double stage_s[N_STAGES], total_s;
    double stage_cpu[N_STAGES], total_cpu; /* process CPU time, medians */
    double bits_mean, bits_median, bits_worst;
    double rss_mib;
    uint64_t relin_bytes, galois_bytes, switch_bytes;
    uint64_t galois_mem;      /* in memory: the b halves of every stored digit (seeded keys) */
    uint64_t galois_full_mem; /* the same keys all made for every level */
    uint64_t relin_mem, switch_mem[2], conj_mem;
    int relin_level, conj_level;
    uint64_t diag_mem;
    size_t n_factors;
    tsr_circuits_boot_factor factors[2 * MAX_FACTORS];
    uint64_t factor_key_mem[2 * MAX_FACTORS]; /* keys first used (highest) at this factor */
    size_t factor_keys[2 * MAX_FACTORS];
    size_t shared_keys; /* steps of both CoeffsToSlots and SlotsToCoeffs */
    double rss_params, rss_circuit, rss_keys, rss_eval; /* current RSS after each setup phase */
    double peak_params, peak_circuit, peak_keys;        /* peak RSS after each setup phase */
    double stage_peak[N_STAGES]; /* peak RSS after each stage of the first run */
    int level_keys, on_the_fly;
    int secure;
    size_t rotations;
    tsr_circuits_boot_info info;
    double log_qp, q0;
    double left_bits; /* log2 of the primes of the levels left (q_1 .. q_out_level), mean */
    int dnum;
} result;

static double mib(uint64_t bytes) {
    return (double)bytes / 1048576.0;
}

/* Bytes in memory of a seeded key serving `level` (its b halves: the a halves are regenerated
 * from a seed during key switching): digits at that level x limbs q_0..q_level, P. */
static uint64_t key_bytes_at(const tsr_ckks_params *p, int level) {
    int k = tsr_ckks_params_special_count(p), dnum = tsr_ckks_params_dnum(p);
    int L = tsr_ckks_params_max_level(p), alpha = (L + 1 + dnum - 1) / dnum;
    int digits = (level + 1 + alpha - 1) / alpha;
    return (uint64_t)digits * (uint64_t)(level + 1 + k) * tsr_ckks_params_n(p) * sizeof(uint64_t);
}

/*
 * Galois keys: with level_keys, each rotation step at the highest level
 * bootstrapping uses it (tsr_circuits_boot_rotation_levels) and the
 * conjugation key at EvalMod's input level; else every key over all levels.
 * Fills the per-factor key accounting of res.
 */
static tsr_status make_galois_keys(tsr_ckks_galois_keys **gk, const tsr_ckks_secret_key *sk,
                                   tsr_ckks_params *p, const tsr_circuits_boot *b, int level_keys,
                                   result *res) {
    size_t ns = tsr_circuits_boot_rotations(b, NULL, 0);
    int *steps = malloc((ns ? ns : 1) * sizeof *steps);
    int *levels = malloc((ns ? ns : 1) * sizeof *levels);
    int *fsteps = malloc((ns ? ns : 1) * sizeof *fsteps);
    int *group = malloc((ns ? ns : 1) * sizeof *group);
    tsr_status st = steps && levels && fsteps && group
                        ? TSR_OK
                        : tsr_fail(TSR_ERR_NOMEM, "out of memory for the rotation steps");
    int relin_level = 0, conj_level = 0, L = tsr_ckks_params_max_level(p);
    if (st == TSR_OK)
        tsr_circuits_boot_rotation_levels(b, steps, levels, ns, &relin_level, &conj_level);
    res->relin_level = level_keys ? relin_level : L;
    res->conj_level = level_keys ? conj_level : L;
    if (st == TSR_OK) st = tsr_ckks_galois_keys_create(gk, sk, NULL, 0, 0);
    /* one call per distinct level, highest first (a progress line per group) */
    for (int level = L; level >= 0 && st == TSR_OK; level--) {
        size_t ng = 0;
        for (size_t t = 0; t < ns; t++)
            if ((level_keys ? levels[t] : L) == level) group[ng++] = steps[t];
        uint32_t flags = level == res->conj_level ? TSR_CKKS_GALOIS_CONJUGATE : 0;
        if (ng || flags) st = tsr_ckks_galois_keys_add_level(*gk, sk, group, ng, flags, level);
    }
    if (st == TSR_OK) {
        res->rotations = ns;
        res->galois_mem = tsr_ckks_galois_keys_memory(*gk);
        res->galois_full_mem = (uint64_t)tsr_ckks_galois_keys_count(*gk) * key_bytes_at(p, L);
        res->conj_mem = key_bytes_at(p, res->conj_level);
        res->n_factors = tsr_circuits_boot_factors(b, res->factors, 2 * MAX_FACTORS, 0, NULL, 0);
        if (res->n_factors > 2 * MAX_FACTORS) res->n_factors = 2 * MAX_FACTORS;
        /* each key is charged to the first factor (in the order above) that uses it at its
         * level; steps used by both stages counted */
        int *seen = calloc(ns ? ns : 1, sizeof *seen); /* bit 0: CtS, bit 1: StC, 4: charged */
        for (size_t f = 0; f < res->n_factors && seen; f++) {
            const tsr_circuits_boot_factor *fa = &res->factors[f];
            res->diag_mem += fa->diag_bytes;
            size_t nf = tsr_circuits_boot_factors(b, NULL, 0, f, fsteps, ns);
            (void)nf;
            for (size_t i = 0; i < fa->rotations && i < ns; i++)
                for (size_t t = 0; t < ns; t++) {
                    if (steps[t] != fsteps[i]) continue;
                    seen[t] |= fa->stage ? 2 : 1;
                    int kl = tsr_ckks_galois_keys_rotation_level(*gk, steps[t]);
                    if (!(seen[t] & 4) && (!level_keys || kl == fa->level)) {
                        seen[t] |= 4;
                        res->factor_keys[f]++;
                        res->factor_key_mem[f] += key_bytes_at(p, kl);
                    }
                }
        }
        for (size_t t = 0; t < ns && seen; t++) res->shared_keys += (seen[t] & 3) == 3;
        if (!seen) st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the key accounting");
        free(seen);
    }
    free(steps);
    free(levels);
    free(fsteps);
    free(group);
    return st;
}

/* EvalMod and level-budget overrides from the command line (0: the library's default) */
static struct { long cos_degree, double_angles, k, cts_levels, stc_levels, diagonals_mib; } tune;

static tsr_status run(const char *preset, unsigned log_n, unsigned left, size_t slots,
                      unsigned ratio, int real, int runs, int level_keys, int on_the_fly,
                      result *res) {
    memset(res, 0, sizeof *res);
    res->level_keys = level_keys;
    res->on_the_fly = on_the_fly;
    tsr_ckks_param_spec spec;
    TSR_TRY(boot_spec(&spec, preset, log_n, left));
    tsr_ckks_params *p = NULL;
    tsr_ckks_secret_key *sk = NULL;
    tsr_ckks_public_key *pk = NULL;
    tsr_ckks_relin_key *rk = NULL;
    tsr_ckks_galois_keys *gk = NULL;
    tsr_ckks_switch_key *to_sparse = NULL, *to_dense = NULL;
    tsr_ckks_encoder *enc = NULL;
    tsr_ckks_evaluator *ev = NULL;
    tsr_ckks_plaintext *pt = NULL;
    tsr_ckks_ciphertext *in = NULL, *x = NULL, *in_b = NULL, *x_b = NULL;
    tsr_circuits_boot *b = NULL;
    double *want = NULL, *got = NULL, *err = NULL, *samples = NULL;
    double t0 = tsr_now();
    tsr_status st = tsr_ckks_params_create(&p, &spec);
    if (st == TSR_OK) st = tsr_ckks_encoder_create(&enc, p);
    res->rss_params = rss_now_mib();
    res->peak_params = peak_rss_mib();
    tsr_circuits_boot_config cfg = { .slots = slots,
                                     .encapsulation_hw = 32,
                                     .log_message_ratio = ratio,
                                     .diagonals_on_the_fly = (unsigned)on_the_fly,
                                     .cos_degree = (unsigned)tune.cos_degree,
                                     .double_angle = (unsigned)tune.double_angles,
                                     .k = (unsigned)tune.k,
                                     .cts_levels = (int)tune.cts_levels,
                                     .stc_levels = (int)tune.stc_levels,
                                     .diagonals_mib = (size_t)tune.diagonals_mib };
    double t1 = tsr_now();
    if (st == TSR_OK) st = tsr_circuits_boot_create(&b, enc, p, &cfg);
    res->circuit_s = tsr_now() - t1;
    res->rss_circuit = rss_now_mib();
    res->peak_circuit = peak_rss_mib();
    t1 = tsr_now();
    int relin_level = TSR_CKKS_TOP_LEVEL;
    if (st == TSR_OK && level_keys)
        tsr_circuits_boot_rotation_levels(b, NULL, NULL, 0, &relin_level, NULL);
    if (st == TSR_OK) st = tsr_ckks_secret_key_create(&sk, p);
    if (st == TSR_OK) st = tsr_ckks_public_key_create(&pk, sk);
    if (st == TSR_OK) st = tsr_ckks_relin_key_create_level(&rk, sk, relin_level);
    if (st == TSR_OK) st = tsr_circuits_boot_switch_keys_create(b, sk, &to_sparse, &to_dense);
    if (st == TSR_OK) st = tsr_circuits_boot_set_switch_keys(b, to_sparse, to_dense);
    if (st == TSR_OK) st = make_galois_keys(&gk, sk, p, b, level_keys, res);
    res->keygen_s = tsr_now() - t1;
    res->rss_keys = rss_now_mib();
    res->peak_keys = peak_rss_mib();
    if (st == TSR_OK) st = tsr_ckks_evaluator_create(&ev, p, rk, gk);
    res->setup_s = tsr_now() - t0;
    res->rss_eval = rss_now_mib();
    if (st == TSR_OK) {
        tsr_circuits_boot_get_info(b, &res->info);
        /* on disk (format 3 writes level-aware keys too) */
        res->relin_bytes = tsr_ckks_relin_key_serialized_size(rk);
        res->galois_bytes = tsr_ckks_galois_keys_serialized_size(gk);
        res->relin_mem = tsr_ckks_relin_key_memory(rk);
        res->switch_bytes =
            tsr_ckks_switch_key_bytes(to_sparse) + tsr_ckks_switch_key_bytes(to_dense);
        /* in memory: the b halves (seeded keys) */
        res->switch_mem[0] = tsr_ckks_switch_key_bytes(to_sparse);
        res->switch_mem[1] = tsr_ckks_switch_key_bytes(to_dense);
        /* and the key to the sparse secret within its sourced bound (docs/SECURITY.md) */
        res->secure = tsr_ckks_params_is_secure(p) && tsr_ckks_switch_key_log_modulus(to_sparse) <=
                                                          TSR_CIRCUITS_ENCAP_MAX_LOG_MODULUS;
        res->log_qp = tsr_ckks_params_log_qp(p);
        res->dnum = tsr_ckks_params_dnum(p);
        res->q0 = (double)tsr_ckks_params_prime(p, 0);
        for (int l = 1; l <= res->info.out_level; l++)
            res->left_bits += log2((double)tsr_ckks_params_prime(p, l)) / res->info.out_level;
    }
    size_t nslots = p ? tsr_ckks_params_slots(p) : 0;
    size_t n = res->info.slots;
    want = malloc(2 * nslots * sizeof *want);
    got = malloc(2 * nslots * sizeof *got);
    err = malloc(2 * (size_t)runs * nslots * sizeof *err);
    samples = malloc((size_t)runs * 2 * (N_STAGES + 1) * sizeof *samples);
    if (st == TSR_OK && (!want || !got || !err || !samples))
        st = tsr_fail(TSR_ERR_NOMEM, "out of memory for the samples");
    if (st == TSR_OK) st = tsr_ckks_plaintext_create(&pt, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&in, p);
    if (st == TSR_OK) st = tsr_ckks_ciphertext_create(&x, p);
    if (st == TSR_OK && real) st = tsr_ckks_ciphertext_create(&in_b, p);
    if (st == TSR_OK && real) st = tsr_ckks_ciphertext_create(&x_b, p);
    /*
     * inputs: n values in [-1, 1] + i [-1, 1] (a fixed generator), repeated
     * with period n; --real: two real vectors, a the real and b the
     * imaginary parts of those values (each its own ciphertext)
     */
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; st == TSR_OK && i < 2 * nslots; i++) {
        if (i < 2 * n) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            want[i] = 2.0 * (double)(rng >> 11) / 9007199254740992.0 - 1.0;
        } else {
            want[i] = want[i % (2 * n)];
        }
    }
    for (int part = 0; part < (real ? 2 : 1) && st == TSR_OK; part++) {
        if (real) /* got: the real vector of this part (imaginary parts 0) */
            for (size_t i = 0; i < nslots; i++) {
                got[2 * i] = want[2 * i + (size_t)part];
                got[2 * i + 1] = 0;
            }
        st = tsr_ckks_encode_complex(enc, pt, real ? got : want, nslots, 1, 0);
        if (st == TSR_OK) st = tsr_ckks_encrypt(pk, part ? in_b : in, pt);
    }
    static const stage_fn fns[N_STAGES - 1] = { tsr_circuits_boot_mod_raise,
                                                tsr_circuits_boot_coeffs_to_slots,
                                                tsr_circuits_boot_eval_mod,
                                                tsr_circuits_boot_slots_to_coeffs };
    tsr_progress prog;
    tsr_progress_begin(&prog, "bootstrap", (size_t)runs, "run");
    size_t ne = 0;
    for (int r = 0; r < runs && st == TSR_OK; r++) {
        double total = 0, total_cpu = 0;
        for (int s = 0; s < N_STAGES && st == TSR_OK; s++) {
            double ts = tsr_now(), tc = tsr_cpu_now();
            if (s == N_STAGES - 1)
                st = real ? tsr_circuits_boot_split_real(b, ev, x_b, x, x) : TSR_OK;
            else if (s == 0 && real)
                st = tsr_circuits_boot_mod_raise_real(b, ev, x, in, in_b);
            else
                st = fns[s](b, ev, x, s == 0 ? in : x);
            double dt = tsr_now() - ts, dc = tsr_cpu_now() - tc;
            samples[(size_t)s * (size_t)runs + (size_t)r] = dt;
            samples[(size_t)(N_STAGES + 1 + s) * (size_t)runs + (size_t)r] = dc;
            total += dt;
            total_cpu += dc;
            if (r == 0) res->stage_peak[s] = peak_rss_mib();
        }
        samples[(size_t)N_STAGES * (size_t)runs + (size_t)r] = total;
        samples[(size_t)(2 * N_STAGES + 1) * (size_t)runs + (size_t)r] = total_cpu;
        /* --real: x_b holds a (the real parts), x holds b (the imaginary parts) */
        for (int part = 0; part < (real ? 2 : 1) && st == TSR_OK; part++) {
            st = tsr_ckks_decrypt(sk, pt, real && part == 0 ? x_b : x);
            if (st == TSR_OK) st = tsr_ckks_decode_complex(enc, pt, got, nslots, NULL);
            for (size_t i = 0; st == TSR_OK && i < n; i++) {
                if (real) {
                    err[ne++] = fabs(got[2 * i] - want[2 * i + (size_t)part]);
                } else {
                    err[ne++] = fabs(got[2 * i] - want[2 * i]);
                    err[ne++] = fabs(got[2 * i + 1] - want[2 * i + 1]);
                }
            }
        }
        tsr_progress_update(&prog, (size_t)r + 1, "%.2f s", total);
    }
    tsr_progress_end(&prog, NULL);
    if (st == TSR_OK) {
        for (int s = 0; s <= N_STAGES; s++) {
            double m = bench_median(samples + (size_t)s * (size_t)runs, (size_t)runs);
            double c =
                bench_median(samples + (size_t)(N_STAGES + 1 + s) * (size_t)runs, (size_t)runs);
            if (s < N_STAGES) {
                res->stage_s[s] = m;
                res->stage_cpu[s] = c;
            } else {
                res->total_s = m;
                res->total_cpu = c;
            }
        }
        double sum = 0;
        for (size_t i = 0; i < ne; i++) sum += err[i];
        qsort(err, ne, sizeof *err, cmp_double);
        res->bits_mean = -log2(sum / (double)ne);
        res->bits_median = -log2(err[ne / 2]);
        res->bits_worst = -log2(err[ne - 1]);
        res->rss_mib = peak_rss_mib();
    }
    free(want);
    free(got);
    free(err);
    free(samples);
    tsr_circuits_boot_free(b);
    tsr_ckks_ciphertext_free(in);
    tsr_ckks_ciphertext_free(x);
    tsr_ckks_ciphertext_free(in_b);
    tsr_ckks_ciphertext_free(x_b);
    tsr_ckks_plaintext_free(pt);
    tsr_ckks_evaluator_free(ev);
    tsr_ckks_galois_keys_free(gk);
    tsr_ckks_switch_key_free(to_sparse);
    tsr_ckks_switch_key_free(to_dense);
    tsr_ckks_relin_key_free(rk);
    tsr_ckks_public_key_free(pk);
    tsr_ckks_secret_key_free(sk);
    tsr_ckks_encoder_free(enc);
    tsr_ckks_params_free(p);
    return st;
}

static const char *const factor_stage[2] = { "CoeffsToSlots", "SlotsToCoeffs" };

/* The memory breakdown (text). */
static void print_memory(const result *r) {
    printf("  memory breakdown (MiB; keys: the b halves of every stored digit, the a halves are "
           "regenerated from seeds):\n");
    printf("    %-18s %5s %5s %5s %5s %10s %5s %10s\n", "factor", "level", "diags", "n1", "rots",
           "diagonals", "keys", "key MiB");
    uint64_t fk = 0;
    for (size_t f = 0; f < r->n_factors; f++) {
        const tsr_circuits_boot_factor *fa = &r->factors[f];
        printf("    %-13s %d/%d %5d %5zu %5zu %5zu %10.1f %5zu %10.1f\n", factor_stage[fa->stage],
               fa->index + 1, fa->stage ? r->info.stc_levels : r->info.cts_levels, fa->level,
               fa->diagonals, fa->baby_steps, fa->rotations, mib(fa->diag_bytes), r->factor_keys[f],
               mib(r->factor_key_mem[f]));
        fk += r->factor_key_mem[f];
    }
    printf("    (a key is listed at the first factor using it at its level; %zu steps serve both "
           "transforms)\n",
           r->shared_keys);
    char layout[128];
    if (r->on_the_fly)
        snprintf(layout, sizeof layout, "coefficients, converted when applied");
    else
        snprintf(layout, sizeof layout,
                 "encoded within %zu MiB, the rest and those of period <= slots/32 as "
                 "coefficients",
                 r->info.diagonals_mib);
    printf("    diagonals %.1f (%s); rotation keys %.1f; conjugation key %.1f (level %d); "
           "trace keys %.1f\n",
           mib(r->diag_mem), layout, mib(fk), mib(r->conj_mem), r->conj_level,
           mib(r->galois_mem - fk - r->conj_mem));
    printf("    relinearization key %.1f (level %d); encapsulation keys %.1f (to sparse, level 0) "
           "+ %.1f (back, top level)\n",
           mib(r->relin_mem), r->relin_level, mib(r->switch_mem[0]), mib(r->switch_mem[1]));
    printf("    resident after: parameters+encoder %.0f, circuit %.0f, keys %.0f, evaluator %.0f\n",
           r->rss_params, r->rss_circuit, r->rss_keys, r->rss_eval);
    printf("    peak after: parameters+encoder %.0f, circuit %.0f, keys %.0f\n", r->peak_params,
           r->peak_circuit, r->peak_keys);
    printf("    peak after the stages of run 1:");
    for (int s = 0; s < N_STAGES; s++)
        printf(" %s %.0f%s", stage_names[s], r->stage_peak[s], s + 1 < N_STAGES ? "," : "\n");
}

static void print_memory_json(const result *r) {
    printf("\"memory_mib\": {\"galois_keys\": %.1f, \"galois_keys_all_top\": %.1f, "
           "\"conjugation_key\": %.1f, \"relin_key\": %.1f, \"switch_keys\": [%.1f, %.1f], "
           "\"diagonals\": %.1f, \"rss_after\": {\"params\": %.0f, \"circuit\": %.0f, "
           "\"keys\": %.0f, \"evaluator\": %.0f}, \"peak_after\": {\"params\": %.0f, "
           "\"circuit\": %.0f, \"keys\": %.0f}, \"peak_after_stage\": {",
           mib(r->galois_mem), mib(r->galois_full_mem), mib(r->conj_mem), mib(r->relin_mem),
           mib(r->switch_mem[0]), mib(r->switch_mem[1]), mib(r->diag_mem), r->rss_params,
           r->rss_circuit, r->rss_keys, r->rss_eval, r->peak_params, r->peak_circuit, r->peak_keys);
    for (int s = 0; s < N_STAGES; s++)
        printf("%s\"%s\": %.0f", s ? ", " : "", stage_names[s], r->stage_peak[s]);
    printf("}}, \"diagonals_on_the_fly\": %s, \"diagonals_budget_mib\": %zu, \"level_keys\": %s, "
           "\"relin_level\": %d, \"conj_level\": %d, \"factors\": [",
           r->on_the_fly ? "true" : "false", r->info.diagonals_mib,
           r->level_keys ? "true" : "false", r->relin_level, r->conj_level);
    for (size_t f = 0; f < r->n_factors; f++) {
        const tsr_circuits_boot_factor *fa = &r->factors[f];
        printf("%s{\"stage\": \"%s\", \"index\": %d, \"level\": %d, \"diagonals\": %zu, "
               "\"baby_steps\": %zu, \"rotations\": %zu, \"diagonals_mib\": %.1f, \"keys\": %zu, "
               "\"keys_mib\": %.1f}",
               f ? ", " : "", factor_stage[fa->stage], fa->index, fa->level, fa->diagonals,
               fa->baby_steps, fa->rotations, mib(fa->diag_bytes), r->factor_keys[f],
               mib(r->factor_key_mem[f]));
    }
    printf("]}\n");
}

int bench_boot_main(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: tessera bench boot [--preset NAME] [--slots S] [--real] [--threads T]\n"
               "                          [--runs K] [--json] [--log-n L] [--levels-left M]\n"
               "                          [--log-message-ratio R] [--full-keys]\n"
               "                          [--diagonals-on-the-fly] [--cos-degree D]\n"
               "                          [--double-angles A] [--k K] [--cts-levels C]\n"
               "                          [--stc-levels S] [--diagonals-mib M]\n\n"
               "Bootstraps one ciphertext K times (default 5, at least 5) and prints the setup\n"
               "time, key sizes, peak memory, the median latency with a per-stage breakdown\n"
               "(ModRaise / CoeffsToSlots / EvalMod / SlotsToCoeffs), the precision against\n"
               "the plaintext (mean, median and worst value, bits; inputs in [-1, 1] + i[-1, 1])\n"
               "and the level and scale left. Parameters (--preset), N = 2^L (default 16):\n"
               "  n16-boot-ifma (default): n16-boot-d4 with q_0 of 50 bits and nine 49-bit\n"
               "    special primes (below 2^50: the AVX-512 IFMA kernels' primes), dnum 4;\n"
               "  n16-boot-d4: q_0 61 bits, M levels of 40 bits (default M = 10; scale\n"
               "    2^40, the network's) under 14 of 60 bits, seven 61-bit special primes,\n"
               "    dnum 4;\n"
               "  n16-boot: q_0 61 bits, 14 + M levels of 60 bits, four 61-bit special\n"
               "    primes, dnum automatic (7);\n"
               "a dense ternary secret with sparse-secret encapsulation (h = 32, its key over\n"
               "q_0 and a prime of its own, < 121 bits, docs/SECURITY.md): 128-bit secure at\n"
               "N = 2^16, M <= 10; smaller N are flagged insecure (quick checks).\n"
               "S: slots, a power of two <= N/2 (default N/2).\n"
               "--real: real slots, two real ciphertexts (the real and imaginary parts of the\n"
               "same inputs) per bootstrap (tsr_circuits_bootstrap_real: joined at ModRaise,\n"
               "split after SlotsToCoeffs, stage split_real); precision over the 2S real\n"
               "values, and the latency per 2^15 real values.\n"
               "R (--log-message-ratio): ModRaise's input scale is q_0 / 2^R (default: the\n"
               "library's, 6 at N = 2^16, 7 for 2^12 slots).\n"
               "Keys are level-aware by default: each rotation key serves only up to the\n"
               "highest level bootstrapping rotates by that step at, the relinearization and\n"
               "conjugation keys up to EvalMod's input level (tsr_ckks_*_level). --full-keys:\n"
               "every key over all levels. Keys hold their b halves in memory; the a halves are\n"
               "regenerated from 32-byte seeds during key switching.\n"
               "--diagonals-on-the-fly: every DFT diagonal kept as coefficients and converted\n"
               "when applied (config.diagonals_on_the_fly: less memory, more time); by default\n"
               "only those of slot period <= slots/32 (a cheap conversion), the others encoded\n"
               "within M MiB (--diagonals-mib; default: the library's, %d, or %d for S <= N/16):\n"
               "the limbs past it are converted when applied (config.diagonals_mib).\n"
               "--cos-degree, --double-angles, --k, --cts-levels, --stc-levels: EvalMod's\n"
               "cosine degree, double-angle steps and range K, the transforms' level budgets\n"
               "(tsr_circuits_boot_config; default: the library's choice).\n"
               "The memory breakdown lists the keys (per factor of the transforms, at the level\n"
               "they are made for), the encoded diagonals per factor, the resident memory after\n"
               "each setup phase and the peak after each stage of the first run.\n",
               TSR_CIRCUITS_BOOT_DIAGONALS_MIB, TSR_CIRCUITS_BOOT_SPARSE_DIAGONALS_MIB);
        return 0;
    }
    long slots = 0, threads = 1, runs = 5, log_n = 16, left = 10, ratio = 0;
    int json = 0, real = 0, full_keys = 0, on_the_fly = 0;
    /* n16-boot-ifma by default: n16-boot-d4's chain (dnum 4, 10 levels of 40 bits left) with q_0
     * and P below 2^50, 7 % faster on an IFMA CPU at one thread and 1.74x on two (d4: 1.70x),
     * peak 3985 MiB (d4: 3779) at N = 2^16 (docs/BENCHMARKS.md, "The seventh round together");
     * without IFMA both run the AVX-512F/AVX2 kernels */
    const char *preset = "n16-boot-ifma";
    const cli_opt opts[] = {
        { "--preset", CLI_STR, &preset, 0, 0 },
        { "--slots", CLI_LONG, &slots, 2, 1L << 16 },
        { "--real", CLI_FLAG, &real, 0, 0 },
        { "--threads", CLI_LONG, &threads, 1, 256 },
        { "--runs", CLI_LONG, &runs, 5, MAX_RUNS },
        { "--json", CLI_FLAG, &json, 0, 0 },
        { "--log-n", CLI_LONG, &log_n, 10, 16 },
        { "--levels-left", CLI_LONG, &left, 1, 30 },
        { "--log-message-ratio", CLI_LONG, &ratio, 4, 40 },
        { "--full-keys", CLI_FLAG, &full_keys, 0, 0 },
        { "--diagonals-on-the-fly", CLI_FLAG, &on_the_fly, 0, 0 },
        { "--cos-degree", CLI_LONG, &tune.cos_degree, 1, 255 },
        { "--double-angles", CLI_LONG, &tune.double_angles, 1, 12 },
        { "--k", CLI_LONG, &tune.k, 1, 4096 },
        { "--cts-levels", CLI_LONG, &tune.cts_levels, 1, 16 },
        { "--stc-levels", CLI_LONG, &tune.stc_levels, 1, 16 },
        { "--diagonals-mib", CLI_LONG, &tune.diagonals_mib, 1, 1L << 30 },
    };
    int prc = cli_parse_args("bench boot", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0);
    if (prc) return prc;
    if (slots && (slots & (slots - 1)))
        return cli_usage_error("bench boot", "--slots must be a power of two");
    int saved = tsr_get_num_threads();
    tsr_set_num_threads((int)threads);
    result r;
    tsr_status st = run(preset, (unsigned)log_n, (unsigned)left, (size_t)slots, (unsigned)ratio,
                        real, (int)runs, !full_keys, on_the_fly, &r);
    tsr_set_num_threads(saved);
    if (st != TSR_OK) return cli_fail("bench boot", st, "bootstrapping");
    const tsr_circuits_boot_info *in = &r.info;
    /* real values per bootstrap: 2n with --real, else n complex slots (2n reals as well) */
    double per_2_15 = r.total_s * 32768.0 / (double)(real ? 2 * in->slots : in->slots);
    unsigned log_ratio = (unsigned)lround(log2((double)r.q0 / in->in_scale));
    if (json) {
        printf(
            "{\"preset\": \"%s\", \"log_n\": %ld, \"slots\": %zu, \"real\": %s, \"threads\": %ld, "
            "\"runs\": %ld, "
            "\"secure\": %s, \"log_qp\": %.1f, \"dnum\": %d, \"log_message_ratio\": %u,\n"
            " \"setup_seconds\": %.3f, \"keygen_seconds\": %.3f, \"circuit_seconds\": %.3f,\n"
            " \"relin_key_bytes\": %llu, \"galois_key_bytes\": %llu, \"switch_key_bytes\": %llu, "
            "\"relin_key_memory_bytes\": %llu, \"galois_key_memory_bytes\": %llu, "
            "\"switch_key_memory_bytes\": %llu, \"rotation_keys\": %zu, "
            "\"peak_rss_mib\": %.0f,\n"
            " \"median_seconds\": {\"total\": %.4f",
            preset, log_n, in->slots, real ? "true" : "false", threads, runs,
            r.secure ? "true" : "false", r.log_qp, r.dnum, log_ratio, r.setup_s, r.keygen_s,
            r.circuit_s, (unsigned long long)r.relin_bytes, (unsigned long long)r.galois_bytes,
            (unsigned long long)r.switch_bytes, (unsigned long long)r.relin_mem,
            (unsigned long long)r.galois_mem,
            (unsigned long long)(r.switch_mem[0] + r.switch_mem[1]), r.rotations, r.rss_mib,
            r.total_s);
        for (int s = 0; s < N_STAGES; s++) printf(", \"%s\": %.4f", stage_names[s], r.stage_s[s]);
        printf("},\n \"median_cpu_seconds\": {\"total\": %.4f", r.total_cpu);
        for (int s = 0; s < N_STAGES; s++) printf(", \"%s\": %.4f", stage_names[s], r.stage_cpu[s]);
        printf("}, \"seconds_per_2_15_%s_values\": %.4f,\n \"precision_bits\": {\"mean\": %.2f, "
               "\"median\": %.2f, \"worst\": %.2f},\n"
               " \"levels\": {\"coeffs_to_slots\": %d, \"eval_mod\": %d, \"slots_to_coeffs\": %d, "
               "\"left\": %d, \"left_prime_bits\": %.2f}, \"log2_scale_after\": %.3f, \"k\": %u, "
               "\"cos_degree\": %u, \"double_angle\": %u,\n ",
               real ? "real" : "complex", per_2_15, r.bits_mean, r.bits_median, r.bits_worst,
               in->cts_levels, in->evalmod_levels, in->stc_levels, in->out_level, r.left_bits,
               log2(in->out_scale), in->k, in->cos_degree, in->double_angle);
        print_memory_json(&r);
    } else {
        printf("bootstrapping (%s): N = 2^%ld, %zu slots%s, %ld thread(s), median of %ld runs "
               "(%s, log2 QP %.1f, dnum %d, R = %u)\n",
               preset, log_n, in->slots, real ? " (real: two real ciphertexts per bootstrap)" : "",
               threads, runs,
               r.secure ? "128-bit secure; encapsulation key under 121 bits" : "INSECURE test ring",
               r.log_qp, r.dnum, log_ratio);
        printf("  setup %.2f s (circuit %.2f s, keygen %.2f s)\n", r.setup_s, r.circuit_s,
               r.keygen_s);
        printf("  keys on disk (uniform halves as seeds): relinearization %.1f MiB, "
               "Galois %.1f MiB (%zu rotations + conjugation), encapsulation %.1f MiB\n",
               mib(r.relin_bytes), mib(r.galois_bytes), r.rotations, mib(r.switch_bytes));
        printf("  Galois keys in memory %.1f MiB (%zu rotations + conjugation; %s; all at the "
               "top level: %.1f MiB)\n",
               mib(r.galois_mem), r.rotations, r.level_keys ? "level-aware" : "full keys",
               mib(r.galois_full_mem));
        printf("  peak memory %.0f MiB\n", r.rss_mib);
        print_memory(&r);
        printf("  latency %.3f s:", r.total_s);
        for (int s = 0; s < N_STAGES; s++)
            printf(" %s %.3f s%s", stage_names[s], r.stage_s[s], s + 1 < N_STAGES ? "," : "\n");
        printf("  CPU time %.3f s:", r.total_cpu);
        for (int s = 0; s < N_STAGES; s++)
            printf(" %s %.3f s%s", stage_names[s], r.stage_cpu[s], s + 1 < N_STAGES ? "," : "\n");
        printf("  per 2^15 %s values: %.3f s\n", real ? "real" : "complex", per_2_15);
        printf("  precision: mean %.2f bits, median %.2f bits, worst value %.2f bits\n",
               r.bits_mean, r.bits_median, r.bits_worst);
        printf("  levels: CoeffsToSlots %d, EvalMod %d (cosine degree %u, K = %u, r = %u), "
               "SlotsToCoeffs %d; %d left at scale 2^%.2f (primes of %.1f bits)\n",
               in->cts_levels, in->evalmod_levels, in->cos_degree, in->k, in->double_angle,
               in->stc_levels, in->out_level, log2(in->out_scale), r.left_bits);
    }
    return 0;
}
