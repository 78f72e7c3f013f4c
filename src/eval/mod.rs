//! Evaluation: answers for question sets, LLM-judge reviews through OpenAI-compatible endpoints,
//! reports; and `vicuna serve`, the OpenAI-compatible server that also acts as a judge in tests.
pub mod client;
pub mod serve;
