from word_count import WordCount, WordCountInput


def test_counts_words_separated_by_any_whitespace() -> None:
    result = WordCount().execute(WordCountInput(text="one  two\tthree\nfour"))
    assert result.count == 4


def test_empty_and_blank_text_have_no_words() -> None:
    assert WordCount().execute(WordCountInput(text="")).count == 0
    assert WordCount().execute(WordCountInput(text="   \n ")).count == 0


def test_punctuation_stays_attached_to_its_word() -> None:
    assert WordCount().execute(WordCountInput(text="hello, world!")).count == 2
