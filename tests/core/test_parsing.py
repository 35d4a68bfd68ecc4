"""Tests for hegelion_core.data.parsing: every label form teachers use, markers, round trip."""

from __future__ import annotations

import pytest

from hegelion_core.data.parsing import (
    ParsedTrace,
    parse_contradictions,
    parse_research_proposals,
    parse_trace,
)
from hegelion_core.records import Contradiction, DialecticTrace, ResearchProposal, render_output


def parts(parsed: ParsedTrace) -> tuple[str | None, str | None, str | None]:
    return parsed.thesis, parsed.antithesis, parsed.synthesis


# ----- label forms ---------------------------------------------------------------

LABEL_FORMS = {
    "plain colon": "THESIS: T body\nANTITHESIS: A body\nSYNTHESIS: S body",
    "bold outside colon": "**THESIS**: T body\n**ANTITHESIS**: A body\n**SYNTHESIS**: S body",
    "bold inside colon": "**THESIS:** T body\n**ANTITHESIS:** A body\n**SYNTHESIS:** S body",
    "dash": "Thesis - T body\nAntithesis - A body\nSynthesis - S body",
    "em dash": "Thesis — T body\nAntithesis – A body\nSynthesis—S body",
    "numbered bold": "1. **THESIS**: T body\n2. **ANTITHESIS**: A body\n3. **SYNTHESIS**: S body",
    "bold numbered": "**1. Thesis:** T body\n**2. Antithesis:** A body\n**3. Synthesis:** S body",
    "roman numerals": "I. Thesis: T body\nII. Antithesis: A body\nIII. Synthesis: S body",
    "bullets": "- **Thesis**: T body\n- **Antithesis**: A body\n- **Synthesis**: S body",
    "body on next line": "THESIS:\nT body\n\nANTITHESIS:\nA body\n\nSYNTHESIS:\nS body",
    "bold alone on line": "**Thesis**\nT body\n\n**Antithesis**\nA body\n\n**Synthesis**\nS body",
    "bare word on line": "Thesis\nT body\n\nAntithesis\nA body\n\nSynthesis\nS body",
    "h2 headings": "## Thesis\nT body\n\n## Antithesis\nA body\n\n## Synthesis\nS body",
    "numbered h3": "### 1. Thesis\nT body\n\n### 2. Antithesis\nA body\n\n### 3. Synthesis\nS body",
    "h1 upper": "# THESIS\nT body\n\n# ANTITHESIS\nA body\n\n# SYNTHESIS\nS body",
    "closed atx": "## Thesis ##\nT body\n## Antithesis ##\nA body\n## Synthesis ##\nS body",
    "bold heading": "### **Thesis**\nT body\n### **Antithesis**\nA body\n### **Synthesis**\nS body",
    "aside in label": (
        "**Thesis (Initial Position):** T body\n"
        "**Antithesis (Critique):** A body\n"
        "**Synthesis (Resolution):** S body"
    ),
    "xml tags": (
        "<thesis>T body</thesis>\n<antithesis>A body</antithesis>\n<synthesis>S body</synthesis>"
    ),
    "xml tags one line": (
        "<thesis>T body</thesis><antithesis>A body</antithesis><synthesis>S body</synthesis>"
    ),
    "xml tags upper": (
        "<THESIS>\nT body\n</THESIS>\n<ANTITHESIS>\nA body\n</ANTITHESIS>\n"
        "<SYNTHESIS>\nS body\n</SYNTHESIS>"
    ),
    "lower case": "thesis: T body\nantithesis: A body\nsynthesis: S body",
    "mixed case": "tHeSiS: T body\nAntiThesis: A body\nsynTHESIS: S body",
    "indented": "  THESIS: T body\n  ANTITHESIS: A body\n  SYNTHESIS: S body",
    "windows newlines": "THESIS: T body\r\nANTITHESIS: A body\r\nSYNTHESIS: S body\r\n",
}


@pytest.mark.parametrize("text", LABEL_FORMS.values(), ids=LABEL_FORMS.keys())
def test_label_forms(text: str) -> None:
    parsed = parse_trace(text)
    assert parts(parsed) == ("T body", "A body", "S body")
    assert parsed.missing == {}
    assert parsed.ok
    assert parsed.answer is None


def test_windows_newlines_with_headings_and_markers() -> None:
    text = (
        "## Thesis\r\nT body\r\n\r\n---\r\n## Antithesis\r\nA body\r\n"
        "CONTRADICTION: C\r\nEVIDENCE: E\r\n\r\nlater prose\r\n**Synthesis**\r\nS body\r\n"
    )
    parsed = parse_trace(text)
    assert parsed.thesis == "T body"
    assert parsed.antithesis is not None and parsed.antithesis.startswith("A body")
    assert parsed.synthesis == "S body"
    assert parsed.contradictions == [Contradiction(description="C", evidence="E")]


def test_multiline_bodies_keep_their_lines() -> None:
    text = "THESIS: first line\nsecond line\n\nthird paragraph\nANTITHESIS:\nA1\n\nA2\nSYNTHESIS: S"
    parsed = parse_trace(text)
    assert parsed.thesis == "first line\nsecond line\n\nthird paragraph"
    assert parsed.antithesis == "A1\n\nA2"


def test_markdown_rule_between_sections_is_not_content() -> None:
    text = "## Thesis\nT body\n\n---\n\n## Antithesis\nA body\n\n***\n\n## Synthesis\nS body\n---"
    assert parts(parse_trace(text)) == ("T body", "A body", "S body")


def test_heading_title_after_colon_is_kept() -> None:
    text = (
        "## Thesis: Minds are programs\nBody.\n## Antithesis: The hard problem\n"
        "Body 2.\n## Synthesis: Both\nBody 3."
    )
    parsed = parse_trace(text)
    assert parsed.thesis == "Minds are programs\nBody."
    assert parsed.antithesis == "The hard problem\nBody 2."
    assert parsed.synthesis == "Both\nBody 3."


def test_duplicated_label_line_is_kept_as_title() -> None:
    text = (
        "THESIS:\nTHESIS: Consciousness as Computation\n\nMachines can think.\n\n"
        "ANTITHESIS:\nANTITHESIS: The Hard Problem\n\nNo.\n\n"
        "SYNTHESIS:\nSYNTHESIS: Middle\n\nBoth."
    )
    parsed = parse_trace(text)
    assert parsed.thesis == "THESIS: Consciousness as Computation\n\nMachines can think."
    assert parsed.antithesis == "ANTITHESIS: The Hard Problem\n\nNo."
    assert parsed.synthesis == "SYNTHESIS: Middle\n\nBoth."


def test_duplicated_label_line_after_markdown_label_is_kept() -> None:
    text = (
        "## Thesis\nTHESIS: Title\n\nBody.\n\n**Antithesis**:\n"
        "Antithesis - Title 2\n\n## Synthesis\nS"
    )
    parsed = parse_trace(text)
    assert parsed.thesis == "THESIS: Title\n\nBody."
    assert parsed.antithesis == "Antithesis - Title 2"
    assert parsed.synthesis == "S"


# ----- surrounding text, thought wrapper, answer -----------------------------------


def test_text_before_first_section_is_dropped_and_after_synthesis_kept() -> None:
    text = (
        "Let me reason about this dialectically.\n\n"
        "**THESIS**: T\n\n**ANTITHESIS**: A\n\n**SYNTHESIS**: S\n\nIn conclusion, S holds."
    )
    parsed = parse_trace(text)
    assert parsed.thesis == "T"
    assert parsed.synthesis == "S\n\nIn conclusion, S holds."
    assert parsed.answer is None


def test_thought_wrapper_and_answer() -> None:
    text = (
        "<thought>\nTHESIS: T\nANTITHESIS: A\nSYNTHESIS: S\nmore S\n"
        "</thought>\n\nThe final answer.\n"
    )
    parsed = parse_trace(text)
    assert parts(parsed) == ("T", "A", "S\nmore S")
    assert parsed.answer == "The final answer."


def test_sections_are_searched_inside_the_thought_block_only() -> None:
    text = (
        "Preamble THESIS\n<thought>\nTHESIS: T\nANTITHESIS: A\n</thought>\nSYNTHESIS: not a section"
    )
    parsed = parse_trace(text)
    assert parsed.thesis == "T"
    assert parsed.antithesis == "A"
    assert parsed.synthesis is None
    assert parsed.missing == {"synthesis": "no SYNTHESIS section found"}
    assert parsed.answer == "SYNTHESIS: not a section"


def test_thought_tags_any_case_and_label_on_same_line() -> None:
    parsed = parse_trace("<THOUGHT>THESIS: T\nANTITHESIS: A\nSYNTHESIS: S</Thought>Answer")
    assert parts(parsed) == ("T", "A", "S")
    assert parsed.answer == "Answer"


def test_empty_answer_after_thought_is_none() -> None:
    assert (
        parse_trace("<thought>THESIS: T\nANTITHESIS: A\nSYNTHESIS: S</thought>\n  \n").answer
        is None
    )


def test_unclosed_thought_block_has_no_answer() -> None:
    parsed = parse_trace("<thought>\nTHESIS: T\nANTITHESIS: A\nSYNTHESIS: S truncated")
    assert parts(parsed) == ("T", "A", "S truncated")
    assert parsed.answer is None


def test_no_wrapper_means_no_answer() -> None:
    assert parse_trace("THESIS: T\nANTITHESIS: A\nSYNTHESIS: S").answer is None


# ----- ANTITHESIS / SYNTHESIS are never THESIS -------------------------------------


def test_only_antithesis_and_synthesis_reports_thesis_missing() -> None:
    parsed = parse_trace("ANTITHESIS: A body\n\nSYNTHESIS: S body")
    assert parsed.thesis is None
    assert parsed.antithesis == "A body"
    assert parsed.synthesis == "S body"
    assert parsed.missing == {"thesis": "no THESIS section found"}
    assert not parsed.ok


@pytest.mark.parametrize(
    "text",
    [
        "## Antithesis\nA\n## Synthesis\nS",
        "**ANTITHESIS**: A\n**SYNTHESIS**: S",
        "<antithesis>A</antithesis><synthesis>S</synthesis>",
        "antithesis - A\nsynthesis - S",
    ],
)
def test_antithesis_and_synthesis_forms_never_read_as_thesis(text: str) -> None:
    parsed = parse_trace(text)
    assert parsed.thesis is None
    assert "thesis" in parsed.missing
    assert (parsed.antithesis, parsed.synthesis) == ("A", "S")


def test_only_synthesis_is_not_thesis() -> None:
    parsed = parse_trace("SYNTHESIS: S")
    assert parsed.thesis is None and parsed.antithesis is None
    assert parsed.synthesis == "S"
    assert set(parsed.missing) == {"thesis", "antithesis"}


# ----- prose mentions do not start sections ----------------------------------------


def test_mid_sentence_mentions_do_not_split_sections() -> None:
    text = (
        "THESIS: Free will exists. One might say the antithesis: determinism.\n"
        "Critics claim the thesis is wrong, and a synthesis - later - may help.\n"
        "ANTITHESIS: Everything is caused. This thesis: fails.\n"
        "SYNTHESIS: Compatibilism, the synthesis of both."
    )
    parsed = parse_trace(text)
    assert parsed.thesis == (
        "Free will exists. One might say the antithesis: determinism.\n"
        "Critics claim the thesis is wrong, and a synthesis - later - may help."
    )
    assert parsed.antithesis == "Everything is caused. This thesis: fails."
    assert parsed.synthesis == "Compatibilism, the synthesis of both."


def test_line_starting_with_word_but_not_a_label() -> None:
    text = (
        "THESIS: T\nThesis statements are short.\nSynthesis is hard work.\n"
        "Thesis-driven writing helps.\nANTITHESIS: A\nSYNTHESIS: S"
    )
    parsed = parse_trace(text)
    assert parsed.thesis == (
        "T\nThesis statements are short.\nSynthesis is hard work.\nThesis-driven writing helps."
    )
    assert parsed.synthesis == "S"


def test_hypothesis_and_parenthesis_words_are_not_labels() -> None:
    text = "Hypothesis: x\nTHESIS: T\nPhotosynthesis: y\nANTITHESIS: A\nSYNTHESIS: S"
    parsed = parse_trace(text)
    assert parsed.thesis == "T\nPhotosynthesis: y"
    assert parsed.antithesis == "A"


def test_plan_list_before_sections_is_passed_over() -> None:
    text = (
        "I will go through:\n- Thesis\n- Antithesis\n- Synthesis\n\n"
        "## Thesis\nT\n\n## Antithesis\nA\n\n## Synthesis\nS"
    )
    assert parts(parse_trace(text)) == ("T", "A", "S")


# ----- order and repeats -------------------------------------------------------------


def test_first_occurrence_wins_for_repeated_labels() -> None:
    text = "THESIS: T1\nANTITHESIS: A1\nSYNTHESIS: S1\nTHESIS: T2\nANTITHESIS: A2"
    parsed = parse_trace(text)
    assert parsed.thesis == "T1"
    assert parsed.antithesis == "A1"
    assert parsed.synthesis == "S1\nTHESIS: T2\nANTITHESIS: A2"


def test_sections_out_of_order_are_parsed_by_label() -> None:
    parsed = parse_trace("SYNTHESIS: S\nTHESIS: T\nANTITHESIS: A")
    assert parts(parsed) == ("T", "A", "S")


def test_antithesis_before_thesis_by_label() -> None:
    parsed = parse_trace("## Antithesis\nA\n## Thesis\nT\n## Synthesis\nS")
    assert parts(parsed) == ("T", "A", "S")


def test_preview_synthesis_label_before_thesis_prefers_ordered_one() -> None:
    text = "Synthesis: a preview\nTHESIS: T\nANTITHESIS: A\nSYNTHESIS: S"
    parsed = parse_trace(text)
    assert parts(parsed) == ("T", "A", "S")


def test_label_of_later_part_inside_thesis_body_is_skipped() -> None:
    text = "THESIS: T\nSynthesis: mentioned early\nANTITHESIS: A\nSYNTHESIS: S"
    parsed = parse_trace(text)
    assert parsed.thesis == "T\nSynthesis: mentioned early"
    assert parsed.synthesis == "S"


# ----- missing parts and placeholders ------------------------------------------------


def test_no_sections_at_all() -> None:
    parsed = parse_trace("Just an answer with no structure.")
    assert parts(parsed) == (None, None, None)
    assert parsed.missing == {
        "thesis": "no THESIS section found",
        "antithesis": "no ANTITHESIS section found",
        "synthesis": "no SYNTHESIS section found",
    }


def test_empty_input() -> None:
    parsed = parse_trace("")
    assert not parsed.ok
    assert parsed.answer is None
    assert parsed.contradictions == [] and parsed.research_proposals == []


def test_missing_antithesis_reason() -> None:
    parsed = parse_trace("THESIS: T\n\nSYNTHESIS: S")
    assert parsed.antithesis is None
    assert parsed.missing == {"antithesis": "no ANTITHESIS section found"}
    assert parsed.thesis == "T"
    assert parsed.synthesis == "S"


def test_empty_section_reason() -> None:
    parsed = parse_trace("THESIS: T\nANTITHESIS:\n\nSYNTHESIS: S")
    assert parsed.antithesis is None
    assert parsed.missing == {"antithesis": "ANTITHESIS section is empty"}
    assert parsed.thesis == "T"  # the empty label still ends the thesis


def test_generated_via_cli_placeholder() -> None:
    parsed = parse_trace("THESIS: T\nANTITHESIS: [Generated via CLI]\nSYNTHESIS: S")
    assert parsed.antithesis is None
    assert parsed.missing == {
        "antithesis": "ANTITHESIS section is a placeholder: '[Generated via CLI]'"
    }


def test_generation_failed_placeholder() -> None:
    text = (
        "<thought>\nTHESIS: T\n\nANTITHESIS: A\n\nSYNTHESIS:\n"
        "[Synthesis generation failed: rate limit]\n</thought>\nx"
    )
    parsed = parse_trace(text)
    assert parsed.synthesis is None
    assert parsed.missing == {
        "synthesis": (
            "SYNTHESIS section is a placeholder: '[Synthesis generation failed: rate limit]'"
        )
    }
    assert parsed.answer == "x"


def test_every_part_placeholder() -> None:
    text = (
        "THESIS: [Generated via CLI]\nANTITHESIS: [Generated via CLI]\n"
        "SYNTHESIS: [Generated via CLI]"
    )
    parsed = parse_trace(text)
    assert parts(parsed) == (None, None, None)
    assert all("placeholder" in reason for reason in parsed.missing.values())
    assert list(parsed.missing) == ["thesis", "antithesis", "synthesis"]


def test_to_trace_raises_with_all_reasons() -> None:
    parsed = parse_trace("ANTITHESIS: A\nSYNTHESIS: [Synthesis generation failed: timeout]")
    with pytest.raises(ValueError) as excinfo:
        parsed.to_trace()
    message = str(excinfo.value)
    assert "no THESIS section found" in message
    assert "SYNTHESIS section is a placeholder" in message


def test_to_trace_builds_full_trace() -> None:
    text = (
        "<thought>THESIS: T\nANTITHESIS: A\nCONTRADICTION: C\nEVIDENCE: E\n"
        "SYNTHESIS: S\nRESEARCH_PROPOSAL: P\nTESTABLE_PREDICTION: Q\n</thought>Ans"
    )
    trace = parse_trace(text).to_trace()
    assert isinstance(trace, DialecticTrace)
    assert trace.thesis == "T"
    assert trace.answer == "Ans"
    assert trace.contradictions == [Contradiction(description="C", evidence="E")]
    assert trace.research_proposals == [ResearchProposal(description="P", testable_prediction="Q")]


def test_parsed_trace_is_frozen() -> None:
    parsed = parse_trace("THESIS: T\nANTITHESIS: A\nSYNTHESIS: S")
    with pytest.raises(AttributeError):
        parsed.thesis = "other"  # type: ignore[misc]


# ----- contradiction markers -----------------------------------------------------------


def test_contradiction_with_evidence_next_line() -> None:
    text = "CONTRADICTION: The gap\nEVIDENCE: Functionalism confuses function with feeling."
    assert parse_contradictions(text) == [
        Contradiction(
            description="The gap", evidence="Functionalism confuses function with feeling."
        )
    ]


def test_multiline_evidence_stops_at_blank_line() -> None:
    text = (
        "CONTRADICTION: The gap\nEVIDENCE: line one\nline two\nline three\n\n"
        "Unrelated closing paragraph."
    )
    assert parse_contradictions(text) == [
        Contradiction(description="The gap", evidence="line one\nline two\nline three")
    ]


def test_evidence_stops_at_next_marker_and_section_label() -> None:
    text = (
        "ANTITHESIS: A\nCONTRADICTION: First\nEVIDENCE: e1\nmore e1\nCONTRADICTION: Second\n"
        "EVIDENCE: e2\nSYNTHESIS: S"
    )
    assert parse_contradictions(text) == [
        Contradiction(description="First", evidence="e1\nmore e1"),
        Contradiction(description="Second", evidence="e2"),
    ]


def test_evidence_stops_at_closing_tag() -> None:
    text = "<antithesis>\nCONTRADICTION: C\nEVIDENCE: E</antithesis>\n<synthesis>S</synthesis>"
    parsed = parse_trace(text)
    assert parsed.contradictions == [Contradiction(description="C", evidence="E")]


@pytest.mark.parametrize(
    "text",
    [
        "**CONTRADICTION**: C\n**EVIDENCE**: E",
        "**CONTRADICTION:** C\n**EVIDENCE:** E",
        "CONTRADICTION 1: C\nEVIDENCE 1: E",
        "**CONTRADICTION 1**: C\n**EVIDENCE**: E",
        "contradiction: C\nevidence: E",
        "Contradiction #1: C\nEvidence: E",
        "1. CONTRADICTION: C\n   EVIDENCE: E",
        "- **Contradiction**: C\n- **Evidence**: E",
        "CONTRADICTION:\nC\nEVIDENCE:\nE",
    ],
)
def test_contradiction_marker_forms(text: str) -> None:
    assert parse_contradictions(text) == [Contradiction(description="C", evidence="E")]


def test_contradiction_without_evidence_keeps_none() -> None:
    text = "CONTRADICTION: Lonely\n\nSome prose.\n\nCONTRADICTION: Second\nEVIDENCE: E"
    assert parse_contradictions(text) == [
        Contradiction(description="Lonely", evidence=None),
        Contradiction(description="Second", evidence="E"),
    ]


def test_evidence_after_blank_line_still_pairs() -> None:
    text = "CONTRADICTION: C\n\nEVIDENCE: E"
    assert parse_contradictions(text) == [Contradiction(description="C", evidence="E")]


def test_orphan_evidence_is_skipped() -> None:
    assert parse_contradictions("EVIDENCE: floating\n\nno contradiction here") == []


def test_second_evidence_does_not_overwrite_first() -> None:
    text = "CONTRADICTION: C\nEVIDENCE: E1\nEVIDENCE: E2"
    assert parse_contradictions(text) == [Contradiction(description="C", evidence="E1")]


def test_mid_sentence_contradiction_is_not_a_marker() -> None:
    assert parse_contradictions("There is a contradiction: the data disagree.") == []


def test_empty_contradiction_marker_is_skipped() -> None:
    assert parse_contradictions("CONTRADICTION:\nEVIDENCE: E") == []


# ----- research proposal markers -------------------------------------------------------


def test_research_proposal_with_prediction() -> None:
    text = "RESEARCH_PROPOSAL: Study X\nTESTABLE_PREDICTION: X rises."
    assert parse_research_proposals(text) == [
        ResearchProposal(description="Study X", testable_prediction="X rises.")
    ]


def test_research_proposal_spaced_names_and_case() -> None:
    text = "Research Proposal: Study X\nTestable Prediction: X rises."
    assert parse_research_proposals(text) == [
        ResearchProposal(description="Study X", testable_prediction="X rises.")
    ]


def test_research_proposal_description_continues_on_following_lines() -> None:
    text = (
        "**RESEARCH_PROPOSAL: Comparative Study**\nBuild two systems.\nCompare them.\n\n"
        "**TESTABLE_PREDICTION**: The first reports qualia sooner."
    )
    assert parse_research_proposals(text) == [
        ResearchProposal(
            description="Comparative Study\nBuild two systems.\nCompare them.",
            testable_prediction="The first reports qualia sooner.",
        )
    ]


def test_proposal_description_spans_paragraphs_up_to_its_prediction() -> None:
    text = "RESEARCH_PROPOSAL: Title\n\nBuild two systems.\n\nTESTABLE_PREDICTION: Q"
    assert parse_research_proposals(text) == [
        ResearchProposal(description="Title\n\nBuild two systems.", testable_prediction="Q")
    ]


def test_proposal_without_prediction_is_kept() -> None:
    text = "RESEARCH_PROPOSAL: Only an idea\n\nClosing words."
    assert parse_research_proposals(text) == [
        ResearchProposal(description="Only an idea", testable_prediction=None)
    ]


def test_prediction_without_proposal_is_skipped() -> None:
    assert parse_research_proposals("TESTABLE_PREDICTION: nothing proposed") == []


def test_several_proposals() -> None:
    text = (
        "RESEARCH_PROPOSAL 1: P1\nTESTABLE_PREDICTION 1: Q1\n\n"
        "RESEARCH_PROPOSAL 2: P2\n\nRESEARCH-PROPOSAL 3: P3\nTESTABLE-PREDICTION: Q3"
    )
    assert parse_research_proposals(text) == [
        ResearchProposal(description="P1", testable_prediction="Q1"),
        ResearchProposal(description="P2", testable_prediction=None),
        ResearchProposal(description="P3", testable_prediction="Q3"),
    ]


def test_markers_are_searched_over_the_whole_text() -> None:
    text = (
        "<thought>THESIS: T\nANTITHESIS: A\nCONTRADICTION: in thought\nEVIDENCE: e\n"
        "SYNTHESIS: S</thought>\nRESEARCH_PROPOSAL: in answer\nTESTABLE_PREDICTION: q"
    )
    parsed = parse_trace(text)
    assert parsed.contradictions == [Contradiction(description="in thought", evidence="e")]
    assert parsed.research_proposals == [
        ResearchProposal(description="in answer", testable_prediction="q")
    ]


def test_markers_stay_inside_section_bodies() -> None:
    parsed = parse_trace("THESIS: T\nANTITHESIS: A\nCONTRADICTION: C\nEVIDENCE: E\nSYNTHESIS: S")
    assert parsed.antithesis == "A\nCONTRADICTION: C\nEVIDENCE: E"


# ----- the legacy sample ---------------------------------------------------------------

LEGACY_THESIS = (
    "THESIS: Consciousness as Computational Process\n\n"
    "Machines can be conscious because consciousness is what certain information "
    "processing does, whatever substrate runs it."
)
LEGACY_ANTITHESIS = (
    "ANTITHESIS: The Hard Problem\n\n"
    "CONTRADICTION: The Explanatory Gap\n"
    "EVIDENCE: Functionalism confuses the functions of consciousness with its felt quality;\n"
    "no functional story explains why there is something it is like.\n\n"
    "CONTRADICTION: The Chinese Room Argument\n"
    "EVIDENCE: Searle's room manipulates symbols without understanding them."
)
LEGACY_SYNTHESIS = (
    "SYNTHESIS: Graded Machine Consciousness\n\n"
    "Consciousness may come in degrees tied to integration.\n\n"
    "**RESEARCH_PROPOSAL: Comparative Architecture Study**\n"
    "Build two AI systems with matched capability, one recurrent and one feed-forward.\n\n"
    "**TESTABLE_PREDICTION**: Machines will first report inner states in the recurrent system."
)
LEGACY_CONTRADICTIONS = [
    Contradiction(
        description="The Explanatory Gap",
        evidence=(
            "Functionalism confuses the functions of consciousness with its felt quality;\n"
            "no functional story explains why there is something it is like."
        ),
    ),
    Contradiction(
        description="The Chinese Room Argument",
        evidence="Searle's room manipulates symbols without understanding them.",
    ),
]
LEGACY_PROPOSALS = [
    ResearchProposal(
        description=(
            "Comparative Architecture Study\n"
            "Build two AI systems with matched capability, one recurrent and one feed-forward."
        ),
        testable_prediction="Machines will first report inner states in the recurrent system.",
    )
]


def test_legacy_raw_response() -> None:
    text = f"{LEGACY_THESIS}\n\n{LEGACY_ANTITHESIS}\n\n{LEGACY_SYNTHESIS}"
    parsed = parse_trace(text)
    assert parsed.ok
    assert parsed.thesis is not None and parsed.thesis.startswith("Consciousness as Computational")
    assert parsed.antithesis is not None and parsed.antithesis.startswith("The Hard Problem")
    assert parsed.contradictions == LEGACY_CONTRADICTIONS
    assert parsed.research_proposals == LEGACY_PROPOSALS


def test_legacy_trace_round_trips_with_markers() -> None:
    trace = DialecticTrace(
        thesis=LEGACY_THESIS,
        antithesis=LEGACY_ANTITHESIS,
        synthesis=LEGACY_SYNTHESIS,
        contradictions=LEGACY_CONTRADICTIONS,
        research_proposals=LEGACY_PROPOSALS,
    )
    parsed = parse_trace(render_output(trace))
    assert parsed.thesis == LEGACY_THESIS
    assert parsed.antithesis == LEGACY_ANTITHESIS
    assert parsed.synthesis == LEGACY_SYNTHESIS
    assert parsed.answer == LEGACY_SYNTHESIS  # no answer: the synthesis stands in
    assert parsed.contradictions == LEGACY_CONTRADICTIONS
    # the synthesis is rendered twice (body and answer); its proposal counts once
    assert parsed.research_proposals == LEGACY_PROPOSALS
    assert parsed.to_trace().thesis == LEGACY_THESIS


# ----- render_output and the round trip --------------------------------------------------


def test_render_output_canonical_form() -> None:
    trace = DialecticTrace(thesis="T", antithesis="A", synthesis="S", answer="Ans")
    assert render_output(trace) == (
        "<thought>\nTHESIS:\nT\n\nANTITHESIS:\nA\n\nSYNTHESIS:\nS\n</thought>\nAns"
    )


def test_render_output_uses_synthesis_when_no_answer() -> None:
    trace = DialecticTrace(thesis="T", antithesis="A", synthesis="S")
    assert render_output(trace).endswith("</thought>\nS")


ROUND_TRIP = [
    DialecticTrace(thesis="T", antithesis="A", synthesis="S"),
    DialecticTrace(thesis="T", antithesis="A", synthesis="S", answer="Final answer."),
    DialecticTrace(thesis=LEGACY_THESIS, antithesis=LEGACY_ANTITHESIS, synthesis=LEGACY_SYNTHESIS),
    DialecticTrace(
        thesis="  padded thesis\n", antithesis="\nA\n\nA2  ", synthesis="S", answer="  spaced  "
    ),
    DialecticTrace(
        thesis="## Thesis\nMarkdown heading inside the body\n\n---",
        antithesis="**Antithesis**: bold label at the start",
        synthesis="<synthesis>tagged body</synthesis>",
        answer="Answer with THESIS: and ANTITHESIS: words.",
    ),
    DialecticTrace(
        thesis="thesis: lower-case title\nThe thesis is that x.",
        antithesis="Antithesis\n\nWe disagree: the synthesis - later - matters.",
        synthesis="SYNTHESIS: combined\n- bullet\n- Thesis\n\nSYNTHESIS: repeated title",
        answer="**Answer**\n\nMulti\nline",
    ),
    DialecticTrace(
        thesis="Body ending in a rule\n\n---",
        antithesis="CONTRADICTION: c\nEVIDENCE: e",
        synthesis="RESEARCH_PROPOSAL: p\nTESTABLE_PREDICTION: q",
        answer="Ünïcödé İstanbul answer — with dashes",
    ),
    DialecticTrace(  # labels of other phases inside bodies, as legacy data has
        thesis="ANTITHESIS: first line\nT\nAntithesis: inside the thesis\n- Synthesis",
        antithesis="A\n## Synthesis\nnot yet\n<synthesis>still A</synthesis>",
        synthesis="Thesis: recap\nAntithesis: recap",
    ),
    DialecticTrace(
        thesis="THESIS:\nbody", antithesis=("ANTITHESIS:\nx\n---"), synthesis="SYNTHESIS:"
    ),
    DialecticTrace(
        thesis=("SYNTHESIS:\nTHESIS\n---"), antithesis="***", synthesis="ANTITHESIS:\nTHESIS:"
    ),
    DialecticTrace(
        thesis="İİİ Turkish capitals before the label\nTHESIS again",
        antithesis="x" * 5000,
        synthesis="line\n" * 200 + "end",
    ),
]


@pytest.mark.parametrize("trace", ROUND_TRIP, ids=[f"trace{i}" for i in range(len(ROUND_TRIP))])
def test_round_trip(trace: DialecticTrace) -> None:
    parsed = parse_trace(render_output(trace))
    assert parsed.missing == {}
    assert parsed.thesis == trace.thesis.strip()
    assert parsed.antithesis == trace.antithesis.strip()
    assert parsed.synthesis == trace.synthesis.strip()
    assert parsed.answer == trace.final_answer.strip()


@pytest.mark.parametrize("trace", ROUND_TRIP, ids=[f"trace{i}" for i in range(len(ROUND_TRIP))])
def test_render_is_stable_after_one_round_trip(trace: DialecticTrace) -> None:
    once = render_output(trace)
    assert render_output(parse_trace(once).to_trace()) == once
