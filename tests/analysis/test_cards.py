"""Model metadata from model cards, task data sources, and citation links."""

from __future__ import annotations

from xbench.analysis.cards import data_source, linked, model_info
from xbench.tasks.spec import TaskSpec


def test_model_facts_come_from_the_card_its_build_or_its_base():
    assert model_info({"parameters": 117_653_760, "embedding_dim": 384, "max_seq_length": 512, "license": "MIT",
                       "url": "https://example.org/m"}) == {
        "parameters": "117.7M", "embedding size": "384", "max tokens": "512", "license": "MIT",
        "link": "https://example.org/m"}
    built = {"max_seq_length": 512, "build": {"base": "intfloat/multilingual-e5-small"}}  # a built-in's card
    assert model_info(built)["link"] == "https://huggingface.co/intfloat/multilingual-e5-small"
    trained = {"max_seq_length": 128, "training": {"base": {"name": "me5-small", "build": {
        "base": "intfloat/multilingual-e5-small", "license": "MIT"}}}}
    info = model_info(trained)
    assert (info["max tokens"], info["license"]) == ("128", "MIT")  # its own length, its base's license
    assert info["link"] == "https://huggingface.co/intfloat/multilingual-e5-small"
    assert [model_info({"parameters": n})["parameters"] for n in (68_922_880, 999_999, "about 69M")] == [
        "68.9M", "999999", "about 69M"]  # millions from a million up; a count given as text stays as written
    assert model_info({"k1": 0.9, "base": "/local/folder"}) == dict.fromkeys(
        ["parameters", "embedding size", "max tokens", "license", "link"])  # a path is no hub id


def spec(**source) -> TaskSpec:
    return TaskSpec(name="t", version="1", family="f", description="d", loader="lareqa", source=source,
                    license="CC0", languages=["en"])


def test_data_sources():
    hub = spec(hub={"dataset": "miracl/miracl-corpus", "revision": "d921ec7e349ce0d28daf30b2da9da5ee698bef0d"})
    assert data_source(hub) == ("miracl/miracl-corpus @ d921ec7e349c", "https://huggingface.co/datasets/"
                                "miracl/miracl-corpus/tree/d921ec7e349ce0d28daf30b2da9da5ee698bef0d")
    assert data_source(spec(dir="../data/xquad-r")) == ("xbench/data/xquad-r (shipped; see its SOURCE.md)", None)
    assert data_source(spec(dir="../data/mine")) == ("folder ../data/mine", None)  # not shipped: as the spec says


def test_citations_link_urls_arxiv_ids_and_dois_and_escape_the_rest():
    text = 'Roy et al. <i>LAReQA</i> arXiv:2004.05484; see https://example.org/x?a=1&b=2 or doi:10.18653/v1/x.'
    assert str(linked(text)) == (
        'Roy et al. &lt;i&gt;LAReQA&lt;/i&gt; <a href="https://arxiv.org/abs/2004.05484" rel="noopener">'
        'arXiv:2004.05484</a>; see <a href="https://example.org/x?a=1&amp;b=2" rel="noopener">'
        'https://example.org/x?a=1&amp;b=2</a> or <a href="https://doi.org/10.18653/v1/x" rel="noopener">'
        'doi:10.18653/v1/x</a>.')
    assert str(linked('javascript:alert(1) "quoted"')) == "javascript:alert(1) &#34;quoted&#34;"
