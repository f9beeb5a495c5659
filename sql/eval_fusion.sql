-- Fusion faithfulness: what `fuse` did to each row, and whether the fused
-- captions add content found in neither input (CapsFusion, Yu et al. 2023,
-- fuses to keep the alt text's facts and the caption's details and nothing
-- else; this measures that, per model and prompt: run it once per setting of
-- lakecap.llm.model / lakecap.fuse.prompt).
--   lakecap run sql/eval_fusion.sql -D LAKE=sample_lake/ -D CAPTIONS=sample_lake.captions.parquet
-- The replies fuse refused are reported after the query as counted warnings,
-- one line per rule: fusion_copies_example (words of the prompt's example
-- found in neither input), fusion_adds_names (names or numbers found in
-- neither input), ungrounded_fusion (under a third of the caption kept).
-- Words here are lower-case alphanumeric runs of four letters or more.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE fusion AS
SELECT l.key, l.alt, c.caption, fuse(l.alt, c.caption) AS fused,
       alt_quality(l.alt)['score'] AS alt_score
FROM lake l JOIN captions c ON c.key = l.key;

-- Each text's distinct words (short ones dropped before splitting).
CREATE TABLE fusion_words AS
SELECT key, fused <> caption AS accepted,
       array_remove_all(array_distinct(string_to_array(regexp_replace(regexp_replace(lower(fused), '[^a-z0-9]+', ' ', 'g'), '\b[a-z0-9]{1,3}\b', '', 'g'), ' ')), '') AS f,
       array_remove_all(array_distinct(string_to_array(regexp_replace(regexp_replace(lower(alt), '[^a-z0-9]+', ' ', 'g'), '\b[a-z0-9]{1,3}\b', '', 'g'), ' ')), '') AS a,
       array_remove_all(array_distinct(string_to_array(regexp_replace(regexp_replace(lower(caption), '[^a-z0-9]+', ' ', 'g'), '\b[a-z0-9]{1,3}\b', '', 'g'), ' ')), '') AS c
FROM fusion WHERE fused IS NOT NULL AND caption IS NOT NULL;

SELECT count(*) AS rows,
       sum(CASE WHEN accepted THEN 1 ELSE 0 END) AS fused,
       round(avg(CASE WHEN accepted THEN 1.0 ELSE 0.0 END), 3) AS fused_share,
       -- novel: words of an accepted fusion in neither input, over its words
       round(sum(CASE WHEN accepted THEN cardinality(array_except(f, array_union(a, c))) END) * 1.0
             / nullif(sum(CASE WHEN accepted THEN cardinality(f) END), 0), 3) AS novel_word_rate,
       -- survival: the alt text's words that an accepted fusion keeps
       round(sum(CASE WHEN accepted THEN cardinality(array_intersect(a, f)) END) * 1.0
             / nullif(sum(CASE WHEN accepted THEN cardinality(a) END), 0), 3) AS alt_word_survival,
       round(sum(CASE WHEN accepted THEN cardinality(array_intersect(c, f)) END) * 1.0
             / nullif(sum(CASE WHEN accepted THEN cardinality(c) END), 0), 3) AS caption_word_survival
FROM fusion_words;
