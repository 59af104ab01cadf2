"""Quality-score classifiers (finephrase/scoring/) and their pipeline steps (finephrase/pipeline/score/).

The fastText tests use a real model trained here on two vocabularies that do not overlap (no download, a fraction
of a second). The Hugging Face scorer: its one-line error when torch/transformers are missing, and (marked `hf`,
skipped without transformers) a tiny BERT with a word-level tokenizer built here, saved and scored.
"""

import math
import pickle
import random
import sys

import pytest
from datatrove.data import Document

from classifiers import HQ_WORDS, LQ_WORDS, hq_text, lq_text, train

from finephrase.errors import UsageError
from finephrase.pipeline.filters.marking import Accounted
from finephrase.pipeline.score import ScoreAnnotator, ScoreFilter
from finephrase.scoring import ClassifierSpec, FastTextScorer, HfScorer, load_scorer, parse_spec
from finephrase.scoring import hf_scorer
from finephrase.scoring.fasttext_scorer import default_label
from finephrase.store import metadata as meta

@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    """A two-label fastText model (`__label__hq`, `__label__lq`), DCLM's shape at toy size (bigrams)."""
    rng = random.Random(0)
    lines = [f"__label__hq {hq_text(rng)}" for _ in range(200)] + [f"__label__lq {lq_text(rng)}" for _ in range(200)]
    rng.shuffle(lines)
    return train(tmp_path_factory.mktemp("fasttext") / "model.bin", lines)


def one_line_usage_error(excinfo, *phrases: str) -> str:
    """The UsageError's message: one line, holding every phrase."""
    assert excinfo.type is UsageError, excinfo
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


# -- the fastText scorer -------------------------------------------------------------------------------------------


def test_fasttext_scores_the_high_quality_vocabulary_above_the_low(model_path):
    rng = random.Random(1)
    scorer = FastTextScorer(model_path)
    assert set(scorer.labels) == {"__label__hq", "__label__lq"}
    assert scorer.chosen_label == "__label__hq"
    hq = scorer.score([hq_text(rng) for _ in range(20)])
    lq = scorer.score([lq_text(rng) for _ in range(20)])
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in hq + lq)
    assert min(hq) > 0.9 > 0.1 > max(lq), (hq, lq)


def test_newlines_are_spaces_and_an_empty_text_gets_the_models_answer(model_path):
    scorer = FastTextScorer(model_path)
    flat, nl, crlf, trailing, empty, newline_only, bad_utf8 = scorer.score(
        ["theorem proof lemma casino", "theorem\nproof\n\nlemma casino", "theorem\r\nproof lemma\r\ncasino",
         "theorem proof lemma casino\n", "", "\n\n", "theorem \ud800 proof"])
    assert nl == pytest.approx(flat, abs=1e-6) and crlf == pytest.approx(flat, abs=1e-6)
    assert trailing == pytest.approx(flat, abs=1e-6)
    assert 0.0 <= empty <= 1.0 and newline_only == pytest.approx(empty, abs=1e-6)  # the model's answer for ""
    assert 0.5 < bad_utf8 <= 1.0  # a lone surrogate is replaced, not an error
    assert scorer.score([]) == []


def test_an_explicit_label_scores_that_label(model_path):
    rng = random.Random(2)
    texts = [hq_text(rng, 4) + " " + lq_text(rng, 4) for _ in range(10)] + [hq_text(rng), lq_text(rng)]
    hq = FastTextScorer(model_path).score(texts)
    lq = load_scorer(f"q=fasttext:{model_path}#__label__lq").score(texts)
    short = FastTextScorer(model_path, label="lq").score(texts)  # the __label__ prefix may be left out
    for h, low, s in zip(hq, lq, short):
        assert low == pytest.approx(1 - h, abs=1e-3) and s == low


def test_the_default_label_rule():
    assert default_label(["__label__lq", "__label__hq"]) == "__label__hq"
    assert default_label(["__label__0", "__label__1"]) == "__label__1"
    assert default_label(["__label__cc", "__label__hq"]) == "__label__hq"
    assert default_label(["__label__low", "__label__lq", "__label__good"]) == "__label__good"
    assert default_label(["__label__lq", "__label__0"]) is None


def test_a_model_without_a_label_to_score_and_an_unknown_label_are_one_line_errors(tmp_path, model_path):
    rng = random.Random(3)
    only_negative = train(tmp_path / "neg.bin", [f"__label__0 {hq_text(rng)}" for _ in range(20)] +
                          [f"__label__lq {lq_text(rng)}" for _ in range(20)])
    with pytest.raises(UsageError) as e:
        FastTextScorer(only_negative).score(["x"])
    one_line_usage_error(e, only_negative, "#LABEL")
    assert FastTextScorer(only_negative, label="__label__0").score([hq_text(rng)])[0] > 0.5
    with pytest.raises(UsageError) as e:
        FastTextScorer(model_path, label="__label__edu").score(["x"])
    one_line_usage_error(e, "__label__edu", "__label__hq")


def test_a_missing_or_foreign_model_file_is_a_one_line_error_naming_it(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(UsageError) as e:
        FastTextScorer(missing).score(["x"])
    one_line_usage_error(e, str(missing), "no such file")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model\n" * 100)
    with pytest.raises(UsageError) as e:
        FastTextScorer(junk).labels
    one_line_usage_error(e, str(junk), "not a fastText model")


def test_a_scorer_pickles_before_and_after_use_without_its_model(model_path):
    rng = random.Random(4)
    texts = [hq_text(rng), lq_text(rng)]
    fresh = FastTextScorer(model_path)
    copy = pickle.loads(pickle.dumps(fresh))
    assert copy._model is None
    expected = fresh.score(texts)
    assert copy.score(texts) == expected
    used = pickle.dumps(fresh)  # the loaded model stays behind
    assert len(used) < 1000 and pickle.loads(used).score(texts) == expected


# -- the spec parser -----------------------------------------------------------------------------------------------


def test_spec_good_forms():
    assert parse_spec("dclm=fasttext:/models/dclm.bin") == ClassifierSpec("dclm", "fasttext", "/models/dclm.bin")
    assert parse_spec("dclm=fasttext:m.bin#__label__hq").label == "__label__hq"
    edu = parse_spec("edu=hf:HuggingFaceFW/fineweb-edu-classifier")
    assert edu == ClassifierSpec("edu", "hf", "HuggingFaceFW/fineweb-edu-classifier", None)
    assert edu.column == "score_edu"
    assert parse_spec(" edu_2 = HF:./models/edu#1 ") == ClassifierSpec("edu_2", "hf", "./models/edu", 1)
    assert parse_spec("x=fasttext:/a/b=c.bin").path == "/a/b=c.bin"


@pytest.mark.parametrize("spec, phrase", [
    ("", "no NAME="),
    ("fasttext:/m.bin", "no NAME="),
    ("Dclm=fasttext:m.bin", "'Dclm'"),
    ("1x=fasttext:m.bin", "'1x'"),
    ("score-x=fasttext:m.bin", "'score-x'"),
    ("bad\nname=fasttext:m.bin", "name"),
    ("x=onnx:m.bin", "fasttext or hf"),
    ("x=fasttext", "fasttext or hf"),
    ("x=fasttext:", "no model path"),
    ("x=hf:  ", "no model path"),
    ("x=fasttext:m.bin#", "nothing after '#'"),
    ("x=fasttext:m.bin#a b", "no spaces"),
    ("x=hf:model#first", "index"),
    ("x=hf:model#-1", "index"),
])
def test_each_bad_spec_is_a_one_line_error_showing_the_form(spec, phrase):
    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    one_line_usage_error(e, phrase, "NAME=fasttext:PATH[#LABEL]", "NAME=hf:MODEL_OR_PATH")


def test_load_scorer_gives_the_kinds_scorer(model_path):
    scorer = load_scorer(f"dclm=fasttext:{model_path}#__label__hq")
    assert isinstance(scorer, FastTextScorer) and scorer.path == model_path and scorer.label == "__label__hq"


# -- the Hugging Face scorer ---------------------------------------------------------------------------------------

HF_MISSING = "Hugging Face classifiers need torch and transformers: pip install 'finephrase[scores-hf]'"


def test_hf_without_torch_or_transformers_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(UsageError) as e:
        load_scorer("edu=hf:HuggingFaceFW/fineweb-edu-classifier")
    assert one_line_usage_error(e) == HF_MISSING
    monkeypatch.setattr(hf_scorer, "_installed", lambda: True)  # as if installed, yet not importable
    scorer = HfScorer("HuggingFaceFW/fineweb-edu-classifier")
    with pytest.raises(UsageError) as e:
        scorer.score(["x"])
    assert one_line_usage_error(e) == HF_MISSING


@pytest.mark.hf
def test_hf_scorer_scores_with_a_tiny_local_bert(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *HQ_WORDS, *LQ_WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    folder = tmp_path / "tiny-bert"
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                         cls_token="[CLS]", sep_token="[SEP]",
                                         model_max_length=64).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, num_labels=1)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)

    texts = ["theorem proof lemma matrix", "cheap\ncasino click"]
    scorer = pickle.loads(pickle.dumps(load_scorer(f"edu=hf:{folder}")))  # picklable before it loads
    scores = scorer.score(texts)
    assert len(scores) == 2 and all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert scorer.num_labels == 1
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = transformers.AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits[:, 0].tolist()
    assert scores == pytest.approx(expected, abs=1e-5)  # the regression output, logits[:, 0]
    assert HfScorer(folder, batch_size=1, device="cpu").score(texts) == pytest.approx(scores, abs=1e-5)


# -- the pipeline steps --------------------------------------------------------------------------------------------


def docs(texts) -> list[Document]:
    return [Document(text=t, id=f"d{i}") for i, t in enumerate(texts)]


def test_score_annotator_annotates_every_document_and_yields_them_all(model_path):
    rng = random.Random(5)
    texts = [hq_text(rng), lq_text(rng), "", "theorem\nproof", hq_text(rng)]
    step = ScoreAnnotator([f"dclm=fasttext:{model_path}"], batch_size=2)
    out = list(step.run(iter(docs(texts))))
    assert [d.id for d in out] == ["d0", "d1", "d2", "d3", "d4"]
    scores = [d.metadata["score_dclm"] for d in out]
    assert all(isinstance(s, float) for s in scores)
    assert scores == FastTextScorer(model_path).score(texts)
    assert scores[0] > 0.9 > 0.1 > scores[1]
    assert step.stats["scored"].total == 5 and step.stats["batches"].total == 3
    assert list(step.run(iter([]))) == []


def test_score_annotator_takes_a_dict_of_specs_and_scorers_and_pickles(model_path):
    rng = random.Random(6)
    step = ScoreAnnotator({"hq": f"fasttext:{model_path}", "lq": FastTextScorer(model_path, "__label__lq")})
    step = pickle.loads(pickle.dumps(step))
    (doc,) = step.run(iter(docs([hq_text(rng)])))
    assert doc.metadata["score_hq"] + doc.metadata["score_lq"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("classifiers, phrase", [
    ([], "at least one classifier"),
    (["a=fasttext:x.bin", "a=fasttext:y.bin"], "two classifiers are named a"),
    ({"Bad": "fasttext:x.bin"}, "'Bad'"),
    ({"a": "onnx:x"}, "fasttext or hf"),
    ({"a": 3}, "score(texts)"),
    (["nonsense"], "no NAME="),
])
def test_score_annotator_refuses_bad_classifiers_in_one_line(classifiers, phrase):
    with pytest.raises(UsageError) as e:
        ScoreAnnotator(classifiers)
    one_line_usage_error(e, phrase)


def scored(**scores) -> Document:
    return Document(text="t", id="x", metadata=scores)


def test_score_filter_keeps_within_bounds_and_gives_a_reason_otherwise():
    f = ScoreFilter("dclm", min=0.5, max=0.9)
    assert f.filter(scored(score_dclm=0.5)) is True and f.filter(scored(score_dclm=0.9)) is True
    assert f.filter(scored(score_dclm=0.1)) == (False, "score_dclm < 0.5")
    assert f.filter(scored(score_dclm=0.95)) == (False, "score_dclm > 0.9")
    assert f.filter(scored(score_edu=0.7)) == (False, "score_dclm missing")  # never passes silently
    assert f.filter(scored(score_dclm=math.nan)) == (False, "score_dclm not a number")
    assert f.filter(scored(score_dclm="high")) == (False, "score_dclm not a number")
    assert ScoreFilter("edu", min=3).filter(scored(score_edu=1e9)) is True
    assert ScoreFilter("edu", max=3).filter(scored(score_edu=-1e9)) is True
    assert f.fingerprint() == {"score": "dclm", "min": 0.5, "max": 0.9}


@pytest.mark.parametrize("kwargs, phrase", [
    ({"name": "Edu"}, "'Edu'"),
    ({"name": "edu", "min": 3, "max": 2}, "min 3 is above max 2"),
    ({"name": "edu", "min": "3"}, "min must be a number"),
    ({"name": "edu", "max": math.nan}, "max must be a number"),
])
def test_score_filter_refuses_bad_settings_in_one_line(kwargs, phrase):
    with pytest.raises(UsageError) as e:
        ScoreFilter(**kwargs)
    one_line_usage_error(e, phrase)


class ListWriter:
    """An exclusion writer that keeps what it is given."""

    def __init__(self):
        self.docs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, doc, rank=0):
        self.docs.append(doc)


def test_score_filter_in_a_pipeline_drops_to_its_exclusion_writer_or_marks_when_accounted(model_path):
    rng = random.Random(7)
    texts = [hq_text(rng), lq_text(rng), hq_text(rng)]
    annotated = list(ScoreAnnotator([f"dclm=fasttext:{model_path}"]).run(iter(docs(texts))))
    writer = ListWriter()
    kept = list(ScoreFilter("dclm", min=0.5, exclusion_writer=writer).run(iter(annotated)))
    assert [d.id for d in kept] == ["d0", "d2"]
    assert [(d.id, d.metadata["filter_reason"]) for d in writer.docs] == [("d1", "score_dclm < 0.5")]
    unscored = docs(["no score here"])
    accounted = list(Accounted(ScoreFilter("dclm", min=0.5)).run(iter(unscored)))  # as finephrase runs it
    assert len(accounted) == 1 and accounted[0].metadata[meta.FILTERED] == "score_dclm missing"
