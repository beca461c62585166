import json

from transformers import AutoTokenizer

from testtime.zoo.tokenizer import CHARACTERS, save_tokenizer


def test_round_trip_through_auto_tokenizer(tmp_path):
    save_tokenizer(tmp_path)
    assert json.loads((tmp_path / "special_tokens_map.json").read_text())["bos_token"] == "<bos>"
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = "countdown: 3 7 25 50 -> 82\n50+25=75\nanswer: (50+25)*7\nwait\nrevise step 2\n"
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1  # one token per character
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(tok(CHARACTERS).input_ids, skip_special_tokens=True) == CHARACTERS
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}) == 4


def test_unknown_characters_map_to_unk(tmp_path):
    tok = save_tokenizer(tmp_path)
    assert tok("Q").input_ids == [tok.bos_token_id, tok.unk_token_id]
