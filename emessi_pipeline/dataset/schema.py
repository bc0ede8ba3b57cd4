"""Every table and view of the dataset, as DDL text; ``connection`` applies it on every writable
connection. Ingest tables (recordings, observation sets, observations, words, runs, failures)
first, then the coded dataset on top (participants, codebooks, codings, carry log), then the
review flags.

Human work (assignments, codings, corrections) is append-only: a change marks the old row
`superseded_at` instead of deleting it, so every earlier decision can still be read back.
Views read only the rows that are in force (`superseded_at IS NULL`) on each recording's
current observation set.
"""

INGEST = """
CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    tool_version VARCHAR, profile VARCHAR, config JSON, models JSON, status VARCHAR, summary JSON);
-- The machine and package versions a run used (runs/environment.py): results repeat only on the same.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS environment JSON;
CREATE TABLE IF NOT EXISTS recordings (
    recording_id VARCHAR PRIMARY KEY, name VARCHAR, path VARCHAR, content_sha256 VARCHAR,
    size_bytes BIGINT, duration_s DOUBLE, container VARCHAR, audio_codec VARCHAR,
    source_sample_rate INTEGER, source_channels INTEGER, audio_streams INTEGER,
    video_streams INTEGER, audio_stream INTEGER, group_id VARCHAR, session_no INTEGER,
    session_date DATE, expected_speakers INTEGER, language VARCHAR, current_set_id VARCHAR,
    first_loaded_at TIMESTAMPTZ, last_loaded_at TIMESTAMPTZ, replaced_by VARCHAR,
    replaced_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS recording_files (
    path VARCHAR PRIMARY KEY, recording_id VARCHAR, last_seen_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS observation_sets (
    set_id VARCHAR PRIMARY KEY, recording_id VARCHAR, run_id VARCHAR, created_at TIMESTAMPTZ,
    asr_model VARCHAR, diarization_model VARCHAR, params JSON, speaker_count INTEGER,
    speakers_requested INTEGER, observation_count INTEGER, word_count INTEGER,
    dropped_loop_words INTEGER);
CREATE TABLE IF NOT EXISTS speakers (
    set_id VARCHAR, recording_id VARCHAR, speaker_label VARCHAR, talk_time_s DOUBLE,
    observation_count INTEGER, word_count INTEGER, PRIMARY KEY (set_id, speaker_label));
CREATE TABLE IF NOT EXISTS observations (
    observation_id VARCHAR PRIMARY KEY, set_id VARCHAR, recording_id VARCHAR, seq INTEGER,
    speaker_label VARCHAR, start_s DOUBLE, end_s DOUBLE, duration_s DOUBLE, text VARCHAR,
    word_count INTEGER, mean_word_prob DOUBLE, overlap BOOLEAN, repetition_loop BOOLEAN);
-- words has no primary key: a set's words are written once, in one statement, guarded by the set's
-- key; an index over a million words would cost a third of the load time and serve no query.
CREATE TABLE IF NOT EXISTS words (
    set_id VARCHAR, word_index INTEGER, recording_id VARCHAR, observation_id VARCHAR,
    start_s DOUBLE, end_s DOUBLE, text VARCHAR, probability DOUBLE, speaker_label VARCHAR,
    overlap BOOLEAN, in_gap BOOLEAN, repetition_loop BOOLEAN, asr_segment INTEGER);
CREATE TABLE IF NOT EXISTS asr_segments (
    set_id VARCHAR, segment_index INTEGER, recording_id VARCHAR, start_s DOUBLE, end_s DOUBLE,
    text VARCHAR, avg_logprob DOUBLE, no_speech_prob DOUBLE, repetition_loop BOOLEAN,
    PRIMARY KEY (set_id, segment_index));
CREATE TABLE IF NOT EXISTS speaker_turns (
    set_id VARCHAR, recording_id VARCHAR, kind VARCHAR, start_s DOUBLE, end_s DOUBLE,
    speaker_label VARCHAR);
CREATE TABLE IF NOT EXISTS failures (
    run_id VARCHAR, failed_at TIMESTAMPTZ, path VARCHAR, recording_id VARCHAR, stage VARCHAR,
    message VARCHAR, file_signature VARCHAR, resolved BOOLEAN DEFAULT false);
-- Columns added after the first schema; a database made before gains them on its next write.
ALTER TABLE failures ADD COLUMN IF NOT EXISTS file_signature VARCHAR;
ALTER TABLE failures ADD COLUMN IF NOT EXISTS resolved BOOLEAN DEFAULT false;
ALTER TABLE words ADD COLUMN IF NOT EXISTS asr_segment INTEGER;
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS replaced_by VARCHAR;
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS replaced_at TIMESTAMPTZ;
-- A recording replaced by a changed file at its path keeps its sets but is no longer current.
-- A person moved an observation to another speaker label of its set (diarisation gave it to the
-- wrong one): append-only like text corrections; the row in force has no superseded_at, and a
-- move back to the diarised label supersedes it without a new row.
CREATE TABLE IF NOT EXISTS speaker_corrections (
    correction_id VARCHAR PRIMARY KEY, observation_id VARCHAR NOT NULL, speaker_label VARCHAR NOT NULL,
    moved_by VARCHAR, moved_at TIMESTAMPTZ, note VARCHAR, carried_from VARCHAR, superseded_at TIMESTAMPTZ);
-- Every view over observations starts here, so a moved observation counts for its new label.
-- The moves in force are joined as a subquery: DuckDB 2.0's optimiser drops a query's LIMIT when a
-- LEFT JOIN of an empty table carries its condition in the ON clause and the query filters on the
-- coalesced column (tests/test_dataset_views.py checks LIMIT through every view).
CREATE OR REPLACE VIEW current_observations AS
    SELECT o.* REPLACE (coalesce(m.speaker_label, o.speaker_label) AS speaker_label),
           r.name AS recording_name, r.group_id, r.session_no
    FROM observations o JOIN recordings r
      ON o.recording_id = r.recording_id AND o.set_id = r.current_set_id AND r.replaced_by IS NULL
    LEFT JOIN (SELECT observation_id, speaker_label FROM speaker_corrections WHERE superseded_at IS NULL) m
      USING (observation_id)
    ORDER BY recording_id, seq;
CREATE OR REPLACE VIEW current_words AS
    SELECT w.* FROM words w JOIN recordings r
      ON w.recording_id = r.recording_id AND w.set_id = r.current_set_id AND r.replaced_by IS NULL
    ORDER BY recording_id, word_index;
CREATE OR REPLACE VIEW current_speakers AS
    SELECT s.* FROM speakers s JOIN recordings r
      ON s.recording_id = r.recording_id AND s.set_id = r.current_set_id AND r.replaced_by IS NULL
    ORDER BY recording_id, speaker_label;
"""

ROLES = ("leader", "facilitator", "participant", "unknown")

TABLES = f"""
CREATE TABLE IF NOT EXISTS participants (
    participant_id VARCHAR PRIMARY KEY, group_id VARCHAR, name VARCHAR, note VARCHAR,
    created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS speaker_assignments (
    assignment_id VARCHAR PRIMARY KEY, recording_id VARCHAR NOT NULL, set_id VARCHAR NOT NULL,
    speaker_label VARCHAR NOT NULL, participant_id VARCHAR,
    role VARCHAR NOT NULL CHECK (role IN {ROLES!r}),
    assigned_by VARCHAR, assigned_at TIMESTAMPTZ, carried_from VARCHAR, superseded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS codebook_versions (
    version INTEGER PRIMARY KEY, name VARCHAR, source VARCHAR, content_sha256 VARCHAR,
    imported_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS codebook_dimensions (
    dimension VARCHAR PRIMARY KEY, label VARCHAR, description VARCHAR, multiple BOOLEAN,
    first_version INTEGER, last_version INTEGER, retired BOOLEAN, position INTEGER);
CREATE TABLE IF NOT EXISTS codebook_codes (
    dimension VARCHAR, code VARCHAR, label VARCHAR, description VARCHAR,
    first_version INTEGER, last_version INTEGER, retired BOOLEAN, position INTEGER,
    PRIMARY KEY (dimension, code));
CREATE TABLE IF NOT EXISTS codebook_entries (
    version INTEGER, dimension VARCHAR, code VARCHAR, label VARCHAR, description VARCHAR,
    multiple BOOLEAN, PRIMARY KEY (version, dimension, code));
CREATE TABLE IF NOT EXISTS codings (
    coding_id VARCHAR PRIMARY KEY, observation_id VARCHAR NOT NULL, coder VARCHAR NOT NULL,
    dimension VARCHAR NOT NULL, code VARCHAR NOT NULL, codebook_version INTEGER, source VARCHAR,
    coded_at TIMESTAMPTZ, carried_from VARCHAR, superseded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS text_corrections (
    correction_id VARCHAR PRIMARY KEY, observation_id VARCHAR NOT NULL, corrector VARCHAR,
    text VARCHAR NOT NULL, corrected_at TIMESTAMPTZ, carried_from VARCHAR, superseded_at TIMESTAMPTZ);
-- The coders registry: a name is matched case-insensitively, so `Anna` is `anna`; a new coder is
-- registered only on purpose (`coding coders add`, `coding import --new-coder`).
CREATE TABLE IF NOT EXISTS coders (
    coder VARCHAR PRIMARY KEY, added_at TIMESTAMPTZ, source VARCHAR);
CREATE TABLE IF NOT EXISTS carry_log (
    recording_id VARCHAR, old_set_id VARCHAR, new_set_id VARCHAR, kind VARCHAR, item_id VARCHAR,
    old_target VARCHAR, outcome VARCHAR, new_target VARCHAR, candidates JSON, reason VARCHAR,
    logged_at TIMESTAMPTZ);
-- A person's verdict on work a re-processing could not place (the latest per item is in force;
-- `reopened` puts it back on the carry_review list).
CREATE TABLE IF NOT EXISTS carry_resolutions (
    resolution_id VARCHAR PRIMARY KEY, recording_id VARCHAR, new_set_id VARCHAR, kind VARCHAR,
    item_id VARCHAR NOT NULL, outcome VARCHAR NOT NULL CHECK (outcome IN ('placed', 'dismissed', 'reopened')),
    note VARCHAR, resolved_by VARCHAR, resolved_at TIMESTAMPTZ);
-- An assignment made by `emessi speakers suggest --apply` (assigned_by 'auto') keeps the
-- voiceprint's cosine score; a person's assignment has none.
ALTER TABLE speaker_assignments ADD COLUMN IF NOT EXISTS score DOUBLE;
-- Voiceprints (voiceprints.py): per participant, one row per recording it was learnt from (the
-- labels a person assigned to them there), so unassigning or withdrawing takes exactly that
-- session's part out. Personal data: never exported unless asked for (exports/table.py).
CREATE TABLE IF NOT EXISTS voiceprints (
    participant_id VARCHAR NOT NULL, recording_id VARCHAR NOT NULL, set_id VARCHAR,
    speaker_labels VARCHAR[], embedder VARCHAR NOT NULL, vector FLOAT[], speech_s DOUBLE,
    stretches INTEGER, stretches_used INTEGER, built_at TIMESTAMPTZ,
    PRIMARY KEY (participant_id, recording_id, embedder));
"""

# Base views: who is speaking (participant and role) and what they said (corrected text).
BASE_VIEWS = """
CREATE OR REPLACE VIEW current_speaker_assignments AS
    SELECT a.recording_id, a.set_id, a.speaker_label, a.participant_id, a.role,
           p.name AS participant_name, coalesce(p.group_id, r.group_id) AS group_id,
           a.assigned_by, a.assigned_at, a.carried_from, a.score
    FROM speaker_assignments a
    JOIN recordings r ON a.recording_id = r.recording_id AND a.set_id = r.current_set_id
    LEFT JOIN participants p ON a.participant_id = p.participant_id
    WHERE a.superseded_at IS NULL AND r.replaced_by IS NULL
    ORDER BY recording_id, speaker_label;
CREATE OR REPLACE VIEW current_corrections AS
    SELECT c.* FROM text_corrections c
    JOIN current_observations o ON c.observation_id = o.observation_id
    WHERE c.superseded_at IS NULL
    ORDER BY observation_id;
CREATE OR REPLACE VIEW utterances AS
    SELECT o.observation_id, o.recording_id, o.recording_name, o.group_id, o.session_no,
           r.session_date, o.set_id, o.seq, o.speaker_label, a.participant_id,
           a.participant_name, coalesce(a.role, 'unknown') AS role,
           coalesce(a.participant_id, o.speaker_label) AS speaker,
           o.start_s, o.end_s, o.duration_s, o.word_count,
           coalesce(c.text, o.text) AS text, o.text AS asr_text, c.text IS NOT NULL AS corrected,
           o.overlap, o.mean_word_prob
    FROM current_observations o
    JOIN recordings r ON o.recording_id = r.recording_id
    LEFT JOIN current_speaker_assignments a
      ON o.recording_id = a.recording_id AND o.speaker_label = a.speaker_label
    LEFT JOIN current_corrections c ON o.observation_id = c.observation_id
    ORDER BY group_id, session_no, recording_name, recording_id, seq;
CREATE OR REPLACE VIEW current_codings AS
    SELECT c.coding_id, c.observation_id, u.recording_id, u.recording_name, u.group_id,
           u.session_no, u.seq, u.start_s, u.end_s, u.speaker_label, u.speaker,
           u.participant_id, u.role, c.coder, c.dimension, c.code, k.label AS code_label,
           coalesce(k.retired, false) AS code_retired, c.codebook_version, c.source, c.coded_at,
           c.carried_from
    FROM codings c
    JOIN utterances u ON c.observation_id = u.observation_id
    LEFT JOIN codebook_codes k ON c.dimension = k.dimension AND c.code = k.code
    WHERE c.superseded_at IS NULL
    ORDER BY group_id, session_no, recording_name, recording_id, seq, coder, dimension, code;
CREATE OR REPLACE VIEW carry_review AS
    WITH verdict AS (
        SELECT recording_id, new_set_id, kind, item_id, arg_max(outcome, resolved_at) AS outcome
        FROM carry_resolutions GROUP BY ALL)
    SELECT c.* FROM carry_log c
    LEFT JOIN verdict v ON c.recording_id = v.recording_id AND c.new_set_id IS NOT DISTINCT FROM v.new_set_id
        AND c.kind = v.kind AND c.item_id = v.item_id
    WHERE c.outcome = 'review' AND (v.outcome IS NULL OR v.outcome = 'reopened')
    ORDER BY logged_at, recording_id, kind, item_id;
"""

# Turn = a maximal run of one speaker's consecutive observations (an observation also ends at a
# long pause of the same speaker, which is not a change of turn).
TALK_VIEWS = """
CREATE OR REPLACE VIEW turns AS
    WITH marked AS (
        SELECT *, CASE WHEN speaker IS DISTINCT FROM
                     lag(speaker) OVER (PARTITION BY recording_id ORDER BY seq) THEN 1 ELSE 0 END AS new_turn
        FROM utterances),
    numbered AS (
        SELECT *, sum(new_turn) OVER (PARTITION BY recording_id ORDER BY seq
                                      ROWS UNBOUNDED PRECEDING)::INTEGER AS turn_no
        FROM marked)
    SELECT recording_id, any_value(recording_name) AS recording_name, any_value(group_id) AS group_id,
           any_value(session_no) AS session_no, turn_no, speaker,
           any_value(participant_id) AS participant_id, any_value(role) AS role,
           min(start_s) AS start_s, max(end_s) AS end_s,
           round(max(end_s) - min(start_s), 3) AS duration_s,
           round(sum(duration_s), 3) AS speech_s, count(*) AS observations,
           sum(word_count)::INTEGER AS words, string_agg(text, ' ' ORDER BY seq) AS text
    FROM numbered GROUP BY recording_id, turn_no, speaker
    ORDER BY group_id, session_no, recording_name, recording_id, turn_no;
CREATE OR REPLACE VIEW talk_per_speaker AS
    WITH marked AS (
        SELECT *, CASE WHEN speaker_label IS DISTINCT FROM
                     lag(speaker_label) OVER (PARTITION BY recording_id ORDER BY seq) THEN 1 ELSE 0 END AS new_turn
        FROM utterances),
    totals AS (SELECT recording_id, sum(duration_s) AS total FROM utterances GROUP BY 1)
    SELECT m.recording_id, any_value(m.recording_name) AS recording_name,
           any_value(m.group_id) AS group_id, any_value(m.session_no) AS session_no,
           m.speaker_label, any_value(m.participant_id) AS participant_id, any_value(m.role) AS role,
           round(sum(m.duration_s), 3) AS talk_s, sum(m.new_turn)::INTEGER AS turns, count(*) AS observations,
           round(sum(m.duration_s) / nullif(sum(m.new_turn), 0), 3) AS mean_turn_s,
           sum(m.word_count)::INTEGER AS words,
           round(sum(m.duration_s) / nullif(any_value(t.total), 0), 4) AS share
    FROM marked m JOIN totals t USING (recording_id)
    GROUP BY m.recording_id, m.speaker_label
    ORDER BY group_id, session_no, recording_name, recording_id, speaker_label;
CREATE OR REPLACE VIEW talk_per_participant AS
    WITH totals AS (SELECT recording_id, sum(speech_s) AS total FROM turns GROUP BY 1)
    SELECT t.recording_id, any_value(t.recording_name) AS recording_name,
           any_value(t.group_id) AS group_id, any_value(t.session_no) AS session_no,
           t.speaker, any_value(t.participant_id) AS participant_id, any_value(t.role) AS role,
           round(sum(t.speech_s), 3) AS talk_s, count(*) AS turns,
           round(avg(t.speech_s), 3) AS mean_turn_s, sum(t.words)::INTEGER AS words,
           round(sum(t.speech_s) / nullif(any_value(s.total), 0), 4) AS share
    FROM turns t JOIN totals s USING (recording_id)
    GROUP BY t.recording_id, t.speaker
    ORDER BY group_id, session_no, recording_name, recording_id, speaker;
CREATE OR REPLACE VIEW talk_per_role AS
    WITH totals AS (SELECT recording_id, sum(speech_s) AS total FROM turns GROUP BY 1)
    SELECT t.recording_id, any_value(t.recording_name) AS recording_name,
           any_value(t.group_id) AS group_id, any_value(t.session_no) AS session_no, t.role,
           count(DISTINCT t.speaker) AS speakers, round(sum(t.speech_s), 3) AS talk_s,
           count(*) AS turns, round(avg(t.speech_s), 3) AS mean_turn_s, sum(t.words)::INTEGER AS words,
           round(sum(t.speech_s) / nullif(any_value(s.total), 0), 4) AS share
    FROM turns t JOIN totals s USING (recording_id)
    GROUP BY t.recording_id, t.role
    ORDER BY group_id, session_no, recording_name, recording_id, role;
CREATE OR REPLACE VIEW group_talk_per_participant AS
    WITH totals AS (SELECT group_id, sum(speech_s) AS total FROM turns GROUP BY 1)
    SELECT t.group_id, t.speaker, any_value(t.participant_id) AS participant_id,
           string_agg(DISTINCT t.role, ',' ORDER BY t.role) AS roles,
           count(DISTINCT t.recording_id) AS sessions, round(sum(t.speech_s), 3) AS talk_s,
           count(*) AS turns, round(avg(t.speech_s), 3) AS mean_turn_s, sum(t.words)::INTEGER AS words,
           round(sum(t.speech_s) / nullif(any_value(s.total), 0), 4) AS share
    FROM turns t JOIN totals s ON t.group_id IS NOT DISTINCT FROM s.group_id
    GROUP BY t.group_id, t.speaker
    ORDER BY group_id, speaker;
CREATE OR REPLACE VIEW group_talk_per_role AS
    WITH totals AS (SELECT group_id, sum(speech_s) AS total FROM turns GROUP BY 1)
    SELECT t.group_id, t.role, count(DISTINCT t.speaker) AS speakers,
           count(DISTINCT t.recording_id) AS sessions, round(sum(t.speech_s), 3) AS talk_s,
           count(*) AS turns, round(avg(t.speech_s), 3) AS mean_turn_s, sum(t.words)::INTEGER AS words,
           round(sum(t.speech_s) / nullif(any_value(s.total), 0), 4) AS share
    FROM turns t JOIN totals s ON t.group_id IS NOT DISTINCT FROM s.group_id
    GROUP BY t.group_id, t.role
    ORDER BY group_id, role;
CREATE OR REPLACE VIEW leadership_share AS
    SELECT recording_id, any_value(recording_name) AS recording_name,
           any_value(group_id) AS group_id, any_value(session_no) AS session_no,
           round(coalesce(sum(share) FILTER (WHERE role = 'leader'), 0), 4) AS leader_share,
           round(coalesce(sum(share) FILTER (WHERE role = 'facilitator'), 0), 4) AS facilitator_share,
           round(coalesce(sum(share) FILTER (WHERE role = 'participant'), 0), 4) AS participant_share,
           round(coalesce(sum(share) FILTER (WHERE role = 'unknown'), 0), 4) AS unassigned_share
    FROM talk_per_role GROUP BY recording_id
    ORDER BY group_id, session_no, recording_name, recording_id;
CREATE OR REPLACE VIEW turn_latencies AS
    SELECT recording_id, recording_name, group_id, session_no, turn_no,
           speaker AS from_speaker, role AS from_role, end_s AS from_end_s,
           lead(speaker) OVER w AS to_speaker, lead(role) OVER w AS to_role,
           lead(start_s) OVER w AS to_start_s,
           round(lead(start_s) OVER w - end_s, 3) AS latency_s
    FROM turns
    WINDOW w AS (PARTITION BY recording_id ORDER BY turn_no)
    QUALIFY lead(speaker) OVER w IS NOT NULL
    ORDER BY group_id, session_no, recording_name, recording_id, turn_no;
CREATE OR REPLACE VIEW turn_transitions AS
    SELECT recording_id, any_value(recording_name) AS recording_name,
           any_value(group_id) AS group_id, any_value(session_no) AS session_no,
           from_speaker, any_value(from_role) AS from_role, to_speaker, any_value(to_role) AS to_role,
           count(*) AS transitions, round(avg(latency_s), 3) AS mean_latency_s
    FROM turn_latencies GROUP BY recording_id, from_speaker, to_speaker
    ORDER BY group_id, session_no, recording_name, recording_id, from_speaker, to_speaker;
CREATE OR REPLACE VIEW response_latency AS
    SELECT recording_id, any_value(recording_name) AS recording_name,
           any_value(group_id) AS group_id, any_value(session_no) AS session_no,
           to_speaker AS speaker, any_value(to_role) AS role, count(*) AS responses,
           round(avg(latency_s), 3) AS mean_latency_s, round(median(latency_s), 3) AS median_latency_s,
           round(min(latency_s), 3) AS min_latency_s, round(max(latency_s), 3) AS max_latency_s,
           count(*) FILTER (WHERE latency_s < 0) AS overlapping_starts
    FROM turn_latencies GROUP BY recording_id, to_speaker
    ORDER BY group_id, session_no, recording_name, recording_id, speaker;
"""

# Overlaps come from the overlap-aware diarisation: observations are cut from the exclusive one
# and so never overlap. B interrupts A when B starts inside A's turn and A stops before B does;
# B starting and ending inside A's turn is a backchannel, counted as an overlap only.
OVERLAP_VIEWS = """
CREATE OR REPLACE VIEW current_regular_turns AS
    SELECT t.recording_id, r.name AS recording_name, r.group_id, r.session_no, t.start_s, t.end_s,
           t.speaker_label, coalesce(a.participant_id, t.speaker_label) AS speaker,
           coalesce(a.role, 'unknown') AS role
    FROM speaker_turns t
    JOIN recordings r ON t.recording_id = r.recording_id AND t.set_id = r.current_set_id
    LEFT JOIN current_speaker_assignments a
      ON t.recording_id = a.recording_id AND t.speaker_label = a.speaker_label
    WHERE t.kind = 'regular' AND r.replaced_by IS NULL
    ORDER BY group_id, session_no, recording_name, recording_id, start_s, end_s, speaker_label;
CREATE OR REPLACE VIEW overlap_events AS
    SELECT a.recording_id, a.recording_name, a.group_id, a.session_no,
           a.speaker AS speaking, a.role AS speaking_role, b.speaker AS overlapping,
           b.role AS overlapping_role, b.start_s AS at_s,
           round(least(a.end_s, b.end_s) - b.start_s, 3) AS overlap_s,
           a.end_s < b.end_s AS interruption
    FROM current_regular_turns a JOIN current_regular_turns b
      ON a.recording_id = b.recording_id AND a.speaker <> b.speaker
     AND b.start_s > a.start_s AND b.start_s < a.end_s
    ORDER BY group_id, session_no, recording_name, recording_id, at_s, speaking, overlapping, overlap_s;
CREATE OR REPLACE VIEW overlaps_per_speaker AS
    WITH made AS (
        SELECT recording_id, overlapping AS speaker, count(*) AS overlaps_started,
               count(*) FILTER (WHERE interruption) AS interruptions_made,
               round(sum(overlap_s), 3) AS overlap_s
        FROM overlap_events GROUP BY 1, 2),
    received AS (
        SELECT recording_id, speaking AS speaker, count(*) AS overlapped_by_others,
               count(*) FILTER (WHERE interruption) AS interrupted_by_others
        FROM overlap_events GROUP BY 1, 2),
    speakers AS (SELECT DISTINCT recording_id, recording_name, group_id, session_no, speaker, role
                 FROM current_regular_turns)
    SELECT s.recording_id, s.recording_name, s.group_id, s.session_no, s.speaker, s.role,
           coalesce(m.overlaps_started, 0) AS overlaps_started,
           coalesce(m.interruptions_made, 0) AS interruptions_made,
           coalesce(r.overlapped_by_others, 0) AS overlapped_by_others,
           coalesce(r.interrupted_by_others, 0) AS interrupted_by_others,
           coalesce(m.overlap_s, 0) AS overlap_s
    FROM speakers s
    LEFT JOIN made m ON s.recording_id = m.recording_id AND s.speaker = m.speaker
    LEFT JOIN received r ON s.recording_id = r.recording_id AND s.speaker = r.speaker
    ORDER BY group_id, session_no, recording_name, recording_id, speaker, role;
"""

# Gini of talk time over the speakers who spoke: sum|xi - xj| / (2 n sum x); 0 = equal shares.
BALANCE_VIEWS = """
CREATE OR REPLACE VIEW participation_balance AS
    WITH x AS (SELECT recording_id, speaker, talk_s FROM talk_per_participant),
    pairs AS (
        SELECT a.recording_id, sum(abs(a.talk_s - b.talk_s)) AS diff
        FROM x a JOIN x b USING (recording_id) GROUP BY 1),
    agg AS (
        SELECT recording_id, any_value(recording_name) AS recording_name,
               any_value(group_id) AS group_id, any_value(session_no) AS session_no,
               count(*) AS speakers, sum(talk_s) AS total_talk_s, max(share) AS max_share,
               min(share) AS min_share
        FROM talk_per_participant GROUP BY 1)
    SELECT agg.*, round(pairs.diff / nullif(2 * agg.speakers * agg.total_talk_s, 0), 4) AS gini
    FROM agg JOIN pairs USING (recording_id)
    ORDER BY group_id, session_no, recording_name, recording_id;
CREATE OR REPLACE VIEW group_participation_balance AS
    WITH x AS (SELECT group_id, speaker, talk_s FROM group_talk_per_participant),
    pairs AS (
        SELECT a.group_id, sum(abs(a.talk_s - b.talk_s)) AS diff
        FROM x a JOIN x b ON a.group_id IS NOT DISTINCT FROM b.group_id GROUP BY 1),
    agg AS (
        SELECT group_id, count(*) AS speakers, sum(talk_s) AS total_talk_s,
               max(share) AS max_share, min(share) AS min_share
        FROM group_talk_per_participant GROUP BY 1)
    SELECT agg.*, round(pairs.diff / nullif(2 * agg.speakers * agg.total_talk_s, 0), 4) AS gini
    FROM agg JOIN pairs ON agg.group_id IS NOT DISTINCT FROM pairs.group_id
    ORDER BY group_id;
"""

CODE_VIEWS = """
CREATE OR REPLACE VIEW codes_by_role AS
    SELECT coder, dimension, code, any_value(code_label) AS code_label, role,
           count(*) AS codings,
           round(count(*) / sum(count(*)) OVER (PARTITION BY coder, dimension, role), 4) AS share_in_role
    FROM current_codings GROUP BY coder, dimension, code, role
    ORDER BY coder, dimension, code, role;
CREATE OR REPLACE VIEW codes_by_session AS
    SELECT group_id, session_no, coder, dimension, code, any_value(code_label) AS code_label,
           count(*) AS codings,
           round(count(*) / sum(count(*)) OVER (PARTITION BY group_id, session_no, coder, dimension), 4)
               AS share_in_session
    FROM current_codings GROUP BY group_id, session_no, coder, dimension, code
    ORDER BY group_id, session_no, coder, dimension, code;
"""

# The review list's flags, written by review.py inside the load transaction.
REVIEW = """
CREATE TABLE IF NOT EXISTS review_flags (
    set_id VARCHAR, recording_id VARCHAR, observation_id VARCHAR, reason VARCHAR,
    priority INTEGER, value DOUBLE, detail VARCHAR);
CREATE TABLE IF NOT EXISTS review_sets (
    set_id VARCHAR PRIMARY KEY, recording_id VARCHAR, computed_at TIMESTAMPTZ,
    rules_version INTEGER, params JSON, flags INTEGER);
-- A person's verdict on a flagged observation (review.resolve): the latest row per observation
-- is in force; `reopened` puts it back on the list. Flags are per set, so are resolutions.
CREATE TABLE IF NOT EXISTS review_resolutions (
    resolution_id VARCHAR PRIMARY KEY, observation_id VARCHAR NOT NULL, recording_id VARCHAR,
    set_id VARCHAR, outcome VARCHAR NOT NULL CHECK (outcome IN ('kept', 'corrected', 'reassigned', 'reopened')),
    note VARCHAR, resolved_by VARCHAR, resolved_at TIMESTAMPTZ);
CREATE OR REPLACE VIEW current_review AS
    SELECT u.recording_id, u.recording_name, u.group_id, u.session_no, u.set_id,
           u.observation_id, u.seq, u.speaker_label, u.speaker, u.role, u.start_s, u.end_s,
           u.duration_s, u.text, f.reason, f.priority, f.value, f.detail
    FROM review_flags f JOIN utterances u ON f.observation_id = u.observation_id
    ORDER BY group_id, session_no, recording_name, recording_id, seq, priority, reason;
"""

# Undo and history (batches.py, undo.py, participant_changes.py). Every import, clear and revert
# of codings is one batch; its items say which codings and corrections it added and superseded,
# so a batch can be reverted by appending rows. Participants renamed or moved keep a history.
HISTORY = """
CREATE TABLE IF NOT EXISTS coding_batches (
    batch_no INTEGER PRIMARY KEY, kind VARCHAR NOT NULL, coder VARCHAR, source VARCHAR,
    file_sha256 VARCHAR, made_by VARCHAR, made_at TIMESTAMPTZ, reverts INTEGER, counts JSON);
CREATE TABLE IF NOT EXISTS coding_batch_items (
    batch_no INTEGER NOT NULL, item_kind VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL CHECK (action IN ('added', 'superseded')));
ALTER TABLE participants ADD COLUMN IF NOT EXISTS renamed_to VARCHAR;
CREATE TABLE IF NOT EXISTS participant_history (
    change_id VARCHAR PRIMARY KEY, participant_id VARCHAR NOT NULL, change VARCHAR NOT NULL,
    old_value VARCHAR, new_value VARCHAR, assignments INTEGER, changed_by VARCHAR, changed_at TIMESTAMPTZ);
"""

# Withdrawals and removals (withdrawal.py): times and hashes, never what was said.
PRIVACY = """
CREATE TABLE IF NOT EXISTS withdrawals (
    action_id VARCHAR, recording_id VARCHAR, start_s DOUBLE, end_s DOUBLE, drop_turns BOOLEAN,
    withdrawn_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS removed_recordings (
    recording_id VARCHAR PRIMARY KEY, content_sha256 VARCHAR, removed_at TIMESTAMP, action_id VARCHAR);
CREATE TABLE IF NOT EXISTS privacy_log (
    action_id VARCHAR PRIMARY KEY, kind VARCHAR, subject VARCHAR, done_at TIMESTAMP, done_by VARCHAR,
    counts JSON);
"""

DATASET = TABLES + BASE_VIEWS + TALK_VIEWS + OVERLAP_VIEWS + BALANCE_VIEWS + CODE_VIEWS
# In this order: the coded-dataset views read the ingest tables, the review view reads utterances.
SCHEMA = INGEST + DATASET + REVIEW + PRIVACY + HISTORY

# Every view above, for `emessi export` and the docs.
VIEWS = (
    "current_speaker_assignments", "current_corrections", "utterances", "current_codings",
    "carry_review", "turns", "talk_per_speaker", "talk_per_participant", "talk_per_role",
    "group_talk_per_participant", "group_talk_per_role", "leadership_share", "turn_latencies",
    "turn_transitions", "response_latency", "current_regular_turns", "overlap_events",
    "overlaps_per_speaker", "participation_balance", "group_participation_balance",
    "codes_by_role", "codes_by_session",
)  # fmt: skip
