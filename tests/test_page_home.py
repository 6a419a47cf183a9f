from streamlit.testing.v1 import AppTest

from gnet.analysis import bottleneck_comparison, factorization_comparison
from gnet.spec import BlockSpec
from tests.conftest import ROOT


def test_app_starts_on_home_page_with_the_seed_numbers():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    # The home page quotes the seeds; the analysis must agree with every figure it quotes.
    ng = bottleneck_comparison(
        BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32), (192, 28, 28), branch="b3"
    )
    b2 = bottleneck_comparison(
        BlockSpec(b1=64, b2_reduce=96, b2=128, b3_reduce=16, b3=32, b4=32), (192, 28, 28), branch="b2"
    )
    fact = factorization_comparison(
        BlockSpec(b1=1, b2_reduce=1, b2=1, b3_reduce=1, b3=64, b4=1, reduce=False), (64, 8, 8)
    )
    for n in (ng.a.multiplications, ng.b.multiplications, b2.a.weights, b2.b.weights, fact.a.weights, fact.b.weights):
        assert f"{n:,}" in text
    assert "H×W×(C1+C2+C3+C4)" in text
    assert any("Compute device" in c.value for c in at.sidebar.caption)
