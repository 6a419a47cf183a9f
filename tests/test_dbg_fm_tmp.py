from tests.test_page_feature_maps import *
def test_dbg(env):
    path = env / "runs" / "demo" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    write_checkpoint(path)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["fm_checkpoint"] = str(path)
    at.run()
    print("TREE", at._tree, at.exception)
    at2 = AppTest.from_file(PAGE, default_timeout=120)
    at2.run()
    print("TREE2", len(at2._tree.children), at2.exception)
