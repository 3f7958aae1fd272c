"""Training and the model graph from Python: a Trainer over the graph of an
ONNX file (parameters, fit with cross-entropy and MSE, evaluate), the trained
graph saved as ONNX and read back, lowered to a Model and run encrypted, and
heify turning a ReLU network (written here with python3-onnx) into a
polynomial student distilled from its teacher. Data are made here, small and
seeded: the whole file runs in seconds."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tessera
from conftest import MODEL


def bits(got, want):
    err = np.max(np.abs(got - want))
    return -np.log2(err / np.max(np.abs(want))) if err > 0 else 60.0


@pytest.fixture(scope="module")
def graph():
    return tessera.Graph.from_onnx(MODEL)


@pytest.fixture(scope="module")
def data():
    """64 images (1, 16, 16); class 1 where the left half is brighter than the right."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.3, 0.7, (64, 1, 16, 16))
    y = (x[:, :, :, :8].mean(axis=(1, 2, 3)) > x[:, :, :, 8:].mean(axis=(1, 2, 3)))
    x[:, :, :, :8] += np.where(y, 0.3, -0.3)[:, None, None, None]  # a margin; x in [0, 1]
    return x, y.astype(np.float64)


def test_trainer_parameters_round_trip(graph):
    t = tessera.Trainer(graph)
    assert t.num_params > 100
    p = t.params
    assert p.dtype == np.float32 and p.shape == (t.num_params,)
    x = np.random.default_rng(1).uniform(0, 1, (3, 1, 16, 16))
    want = graph.run(x)[0]
    got = t.graph.run(x)[0]
    assert bits(got, want) > 18  # the weights as float32
    t.params = np.zeros_like(p)  # writing the vector changes the model:
    zero = t.graph.run(x)[0]  # the last node is Gemm(h, fc.weight, fc.bias), both now 0
    assert np.array_equal(zero, np.zeros_like(want)) and not np.allclose(zero, want)
    t.params = p  # and writing the original back gives the original model again
    assert bits(t.graph.run(x)[0], want) > 18
    with pytest.raises(ValueError):
        t.params = np.zeros(3)


def test_fit_cross_entropy_learns_and_is_deterministic(graph, data):
    x, y = data
    t = tessera.Trainer(graph)
    loss0, acc0 = t.evaluate(x, y)
    rep = t.fit(x, y, epochs=8, batch=16, lr=0.01, seed=5, x_test=x, y_test=y)
    loss1, acc1 = t.evaluate(x, y)
    assert rep["steps"] == 8 * 4
    assert loss1 < 0.5 * loss0, (loss0, loss1)
    assert acc1 >= 0.9 and acc1 > acc0, (acc0, acc1)
    assert rep["test_acc"] == pytest.approx(acc1)
    g2, rep2 = tessera.train(graph, x, y, epochs=8, batch=16, lr=0.01, seed=5)
    assert rep2["train_loss"] == rep["train_loss"]  # same seed, same threads: same run
    assert np.array_equal(g2.run(x)[0], t.graph.run(x)[0])


def test_fit_mse_on_targets(graph):
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (32, 1, 16, 16))
    target = 0.5 * graph.run(x)[0] + 0.25
    t = tessera.Trainer(graph)
    before, acc = t.evaluate(x, target, loss="mse")
    assert np.isnan(acc)
    t.fit(x, target, epochs=10, batch=8, lr=3e-3, loss="mse")
    after, _ = t.evaluate(x, target, loss="mse")
    assert after < 0.5 * before, (before, after)


def constants(graph, tmp_path, name):
    """The graph's constants as numpy arrays, read from its saved ONNX file (not through the
    Trainer under test)."""
    path = tmp_path / name
    graph.save(path)
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_fixed_constants_do_not_move(graph, data, tmp_path):
    x, y = data
    t = tessera.Trainer(graph)
    fixed, moving = "fc.weight", "conv2.weight"
    assert t.is_trainable(fixed) and t.is_trainable(moving), "the fixture's weights were renamed"
    n0 = t.num_params
    t.set_trainable(fixed, False)
    assert not t.is_trainable(fixed) and t.num_params < n0
    before = constants(t.graph, tmp_path, "before.onnx")
    t.fit(x, y, epochs=2, batch=16, lr=0.01, seed=5)
    after = constants(t.graph, tmp_path, "after.onnx")
    assert np.array_equal(after[fixed], before[fixed])  # fixed: not one bit moved
    assert not np.allclose(after[moving], before[moving])  # trainable: trained
    with pytest.raises(tessera.NotFoundError):
        t.set_trainable("no such constant")


def test_saved_graph_reads_back_and_runs_encrypted(graph, data, tmp_path):
    x, y = data
    trained, _ = tessera.train(graph, x, y, epochs=2, batch=16, lr=0.01)
    path = tmp_path / "trained.onnx"
    trained.save(path)
    again = tessera.Graph.from_onnx(path)
    assert [k for _, k in again.nodes] == [k for _, k in trained.nodes]
    assert bits(again.run(x[:4])[0], trained.run(x[:4])[0]) > 18
    model = trained.to_model()
    plan = tessera.compile(model, batch=2, log_n=11, insecure=True)
    keys = tessera.KeyPair(plan)
    ref = trained.run(x[:2])[0]
    got = tessera.decrypt(plan, keys, tessera.infer(plan, keys.eval_keys(),
                                                    tessera.encrypt(plan, keys, x[:2])))
    assert bits(got, ref) > 10, (got, ref)
    with pytest.raises(tessera.IOError_):
        trained.save(tmp_path / "no" / "such" / "dir.onnx")


def relu_mlp(path, rng):
    """A teacher: 8 -> 16 -> ReLU -> 3 (Gemm, Relu, Gemm)."""
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (16, 8)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (3, 16)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(3, np.float32), "b2")
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [w1, b1, w2, b2])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_heify_and_distil(tmp_path):
    rng = np.random.default_rng(9)
    relu_mlp(tmp_path / "t.onnx", rng)
    with pytest.raises(tessera.UnsupportedError):  # ReLU cannot run encrypted
        tessera.Graph.from_onnx(tmp_path / "t.onnx")
    teacher = tessera.Graph.from_onnx(tmp_path / "t.onnx", non_polynomial=True)
    x = rng.normal(0, 1, (256, 8))
    labels = teacher.run(x)[0].argmax(1).astype(np.float64)
    student, rep = tessera.heify(teacher, x, degree=2)
    assert rep["n_acts"] == 1 and rep["acts"][0]["was"] == "relu"
    assert rep["acts"][0]["bound"] >= max(-rep["acts"][0]["lo"], rep["acts"][0]["hi"])
    kinds = [k for _, k in student.nodes]
    assert "relu" not in kinds and "chebyshev" in kinds
    t = tessera.Trainer(student)
    _, acc0 = t.evaluate(x, labels)
    t.fit(x, labels, epochs=20, batch=32, lr=0.01, teacher=teacher, range_weight=0.1)
    _, acc1 = t.evaluate(x, labels)
    assert acc1 >= 0.9 and acc1 >= acc0, (acc0, acc1)
    with pytest.raises(TypeError):
        tessera.heify("not a graph", x)
    with pytest.raises(tessera.TesseraError):  # calibration data of the wrong shape
        tessera.heify(teacher, np.zeros((4, 5)))


def test_ranges_and_out_of_range_counts(tmp_path):
    """Trainer.ranges against numpy: the polynomial's input is the first Gemm's output."""
    rng = np.random.default_rng(12)
    relu_mlp(tmp_path / "t.onnx", rng)
    m = onnx.load(str(tmp_path / "t.onnx"))
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    teacher = tessera.Graph.from_onnx(tmp_path / "t.onnx", non_polynomial=True)
    x = rng.normal(0, 1, (100, 8))
    h = x @ w["w1"].T + w["b1"]
    student, rep = tessera.heify(teacher, x, degree=2)
    t = tessera.Trainer(student)
    (cheb,) = [r for r in t.ranges(x, batch=32) if r["kind"] == "chebyshev"]
    assert cheb["lo"] == pytest.approx(h.min(), abs=1e-9)
    assert cheb["hi"] == pytest.approx(h.max(), abs=1e-9)
    b = rep["acts"][0]["bound"]
    assert cheb["bound"] == pytest.approx((-b, b))
    assert (cheb["outside"], cheb["count"]) == (0, h.size)  # calibrated on these x
    t.set_bound(cheb["node"], 0.5)
    (cheb,) = [r for r in t.ranges(x) if r["kind"] == "chebyshev"]
    want = int((np.abs(h) > 0.5).sum())
    assert 0 < want < h.size and cheb["outside"] == want and cheb["bound"] == (-0.5, 0.5)
    (relu,) = [r for r in tessera.Trainer(teacher).ranges(x) if r["kind"] == "relu"]
    assert relu["bound"] is None and relu["count"] == 0
    assert relu["lo"] == pytest.approx(h.min(), abs=1e-9)
    with pytest.raises(ValueError):
        t.ranges(np.zeros((0, 8)))


def test_trainer_refuses_bad_data(graph):
    t = tessera.Trainer(graph)
    with pytest.raises(tessera.TesseraError) as e:
        t.fit(np.zeros((4, 1, 8, 8)), np.zeros(4))
    assert "shape" in str(e.value).lower() or "input" in str(e.value).lower()
    with pytest.raises(ValueError):
        t.fit(np.zeros((4, 1, 16, 16)), np.zeros(4), loss="hinge")
    with pytest.raises(ValueError):
        t.fit(np.zeros((4, 1, 16, 16)), np.zeros(4), x_test=np.zeros((4, 1, 16, 16)))
    with pytest.raises(TypeError):
        tessera.Trainer("model.onnx")


def two_polys_one_name(path, rng):
    """8 -> Gemm -> c0 + c1 h + c2 h^2 -> Gemm -> the same polynomial, both nodes named "act"
    (ONNX lets nodes share a name; exporters do)."""
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (6, 8)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (3, 6)).astype(np.float32), "w2")
    c = [numpy_helper.from_array(np.array(v, np.float32), n)
         for n, v in (("c0", 0.1), ("c1", 0.5), ("c2", 0.25))]
    nodes = []
    for i, (src, dst) in enumerate((("h", "a"), ("g", "y"))):
        nodes += [helper.make_node("Mul", [src, src], ["%s_sq" % src], name="act"),
                  helper.make_node("Mul", ["%s_sq" % src, "c2"], ["%s_t2" % src], name="act"),
                  helper.make_node("Mul", [src, "c1"], ["%s_t1" % src], name="act"),
                  helper.make_node("Add", ["%s_t1" % src, "%s_t2" % src], ["%s_s" % src],
                                   name="act"),
                  helper.make_node("Add", ["%s_s" % src, "c0"], [dst], name="act")]
    nodes.insert(0, helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"))
    nodes.insert(6, helper.make_node("Gemm", ["a", "w2"], ["g"], transB=1, name="fc2"))
    g = helper.make_graph(nodes, "two",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [w1, w2] + c)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_set_bound_by_position(tmp_path):
    """A name two nodes share is refused with a pointer to positions; the position (as in
    ranges()) sets the bound of that node only, and what it counts matches numpy."""
    rng = np.random.default_rng(21)
    two_polys_one_name(tmp_path / "p.onnx", rng)
    g = tessera.Graph.from_onnx(tmp_path / "p.onnx")
    t = tessera.Trainer(g)
    polys = [i for i, (name, kind) in enumerate(g.nodes) if kind == "poly"]
    assert len(polys) == 2 and {g.nodes[i][0] for i in polys} == {"act"}
    with pytest.raises(tessera.TesseraError) as e:
        t.set_bound("act", 1.0)
    assert "pass the node's position instead" in str(e.value)  # the Python hint
    assert "position" in e.value.detail  # and the C message's
    names = [n for n, _ in g.nodes]
    other = next(n for n, k in g.nodes if k != "poly" and n and names.count(n) == 1)
    with pytest.raises(tessera.TesseraError) as e:
        t.set_bound(other, 1.0)  # refused as not a polynomial: no hint about positions
    assert "position" not in str(e.value)
    x = rng.normal(0, 1, (50, 8))
    rows = t.ranges(x)
    assert all(rows[i]["bound"] is None for i in polys)
    t.set_bound(polys[1], 0.3)
    rows = t.ranges(x)
    assert rows[polys[0]]["bound"] is None
    assert rows[polys[1]]["bound"] == (-0.3, 0.3)
    m = onnx.load(str(tmp_path / "p.onnx"))
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    h = x @ w["w1"].T
    a = w["c0"] + w["c1"] * h + w["c2"] * h * h
    gin = a @ w["w2"].T  # the second polynomial's input
    want = int((np.abs(gin) > 0.3).sum())
    assert 0 < want < gin.size
    assert (rows[polys[1]]["outside"], rows[polys[1]]["count"]) == (want, gin.size)
    t.set_bound(np.int64(polys[0]), 2.0)  # numpy integers are positions too
    assert t.ranges(x)[polys[0]]["bound"] == (-2.0, 2.0)
    with pytest.raises(tessera.NotFoundError):
        t.set_bound(len(g.nodes), 1.0)
    with pytest.raises(tessera.TesseraError):
        t.set_bound(polys[0] - 1 if polys[0] > 0 else polys[1] + 1, 1.0)  # not a polynomial
    with pytest.raises(TypeError):
        t.set_bound(True, 1.0)
