//! Evaluation: answers for question sets (through `infer`), LLM-judge reviews through
//! OpenAI-compatible endpoints (`vicuna serve` acts as one in tests), reports.
//!
//! Pure logic (no network): `questions` (question and answer files, sampling temperatures),
//! `prompts` (judge prompts and rendering), `verdict` (reading judge replies), `judgment` (the
//! judgment record), `report` (the numbers), `markdown` and `chart` (report output), `jsonl`
//! (line-numbered JSON Lines reading); they follow FastChat's llm_judge (MT-bench) and the
//! original Vicuna-80 review.
pub mod answer;
pub mod chart;
pub mod client;
pub mod jsonl;
pub mod judge;
pub mod judgment;
pub mod markdown;
pub mod prompts;
pub mod questions;
pub mod report;
pub mod verdict;
