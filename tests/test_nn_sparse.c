/*
 * tests/test_nn_sparse.c - the compiler's dry run sees pruned weight tiles:
 * a dense network lowered with half of its weight tiles zero (the rows of
 * half of the first layer's neurons, the matching columns of the second)
 * needs exactly half of the ciphertext-plaintext products and plaintexts,
 * and the first layer's zero output tiles need no rotations. Values through
 * zero tiles are checked in test_tile_sparse.c.
 */
#include "testutil.h"

#include "nn/program.h"

#include <string.h>

static tsr_nn_model *mlp(tsr_prng *g, int prune) {
    tsr_nn_model *m;
    tt_ok(nn_model_create(&m, 64, 1, 1));
    static double w1[32 * 64], w2[16 * 32];
    for (int i = 0; i < 32 * 64; i++) w1[i] = 2 * tsr_prng_double(g) - 1;
    for (int i = 0; i < 16 * 32; i++) w2[i] = 2 * tsr_prng_double(g) - 1;
    if (prune) {
        /* neurons 0..15 of the hidden layer: their rows in W1, their columns in W2 */
        for (int o = 0; o < 16; o++)
            for (int i = 0; i < 64; i++) w1[o * 64 + i] = 0.0;
        for (int o = 0; o < 16; o++)
            for (int i = 0; i < 16; i++) w2[o * 32 + i] = 0.0;
    }
    nn_layer L;
    int t;
    memset(&L, 0, sizeof L);
    L.kind = NN_DENSE;
    snprintf(L.name, sizeof L.name, "fc1");
    L.in[0] = 0;
    L.w = w1;
    L.w_len = 32 * 64;
    tt_ok(nn_model_add(m, &L, (nn_shape){ 32, 1, 1 }, &t));
    memset(&L, 0, sizeof L);
    L.kind = NN_SQUARE;
    snprintf(L.name, sizeof L.name, "sq");
    L.in[0] = t;
    tt_ok(nn_model_add(m, &L, (nn_shape){ 32, 1, 1 }, &t));
    memset(&L, 0, sizeof L);
    L.kind = NN_DENSE;
    snprintf(L.name, sizeof L.name, "fc2");
    L.in[0] = t;
    L.w = w2;
    L.w_len = 16 * 32;
    tt_ok(nn_model_add(m, &L, (nn_shape){ 16, 1, 1 }, &t));
    tt_ok(nn_model_validate(m));
    return m;
}

typedef struct dense_counts {
    uint64_t mul_plain[2], rotations[2], plain;
} dense_counts;

static void lower(const tsr_nn_model *m, int orient, dense_counts *dc) {
    tsr_mockup_params mp;
    tsr_mockup_params_default(&mp, 128, 6);
    mp.track_values = 0;
    mp.rotations = TSR_ROTATIONS_COLLECT;
    tsr_backend *be;
    tt_ok(tsr_backend_mockup_create(&mp, &be));
    nn_config c = { .packing = TSR_NN_PACK_TILED,
                    .slots = 128,
                    .t = { 8, 1, 1, 16, 1 },
                    .orient = orient,
                    .batch = 1 };
    nn_program *p;
    tt_ok(nn_program_build(m, &c, be, &p));
    memset(dc, 0, sizeof *dc);
    int k = 0;
    for (int i = 0; i < p->n_steps; i++) {
        if (p->steps[i].op != NN_OP_DENSE) continue;
        assert_true(k < 2);
        dc->mul_plain[k] = p->steps[i].counts.mul_plain;
        dc->rotations[k] = p->steps[i].counts.rotations;
        k++;
    }
    assert_int_equal(k, 2);
    dc->plain = p->n_plain;
    nn_program_free(p);
    tsr_backend_free(be);
}

static void test_pruned_tiles_counted(void **state) {
    (void)state;
    for (int orient = 0; orient <= 3; orient += 3) {
        tsr_prng g;
        tt_prng(&g, 1310);
        tsr_nn_model *dense = mlp(&g, 0), *sparse = mlp(&g, 1);
        dense_counts d, s;
        lower(dense, orient, &d);
        lower(sparse, orient, &s);
        for (int k = 0; k < 2; k++) {
            assert_true(d.mul_plain[k] > 0);
            assert_int_equal(2 * s.mul_plain[k], d.mul_plain[k]);
        }
        /* Half of the first layer's output tiles are zero: no rotate-and-sum for them. */
        assert_int_equal(2 * s.rotations[0], d.rotations[0]);
        assert_int_equal(s.rotations[1], d.rotations[1]);
        /* No biases: the plaintexts are the weight tiles. */
        assert_int_equal(2 * s.plain, d.plain);
        tsr_nn_model_free(dense);
        tsr_nn_model_free(sparse);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pruned_tiles_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
