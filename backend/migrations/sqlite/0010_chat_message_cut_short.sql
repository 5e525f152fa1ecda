-- An assistant message stored shorter than the model would have written it, and why: the
-- shopper closed the stream (`client_closed`) or the answer ran past
-- `chat.llm_total_timeout_secs` (`timed_out`). NULL for a whole message.
ALTER TABLE chat_messages ADD COLUMN cut_short TEXT
    CHECK (cut_short IN ('client_closed', 'timed_out'));
