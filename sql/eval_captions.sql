-- Caption statistics per source, side by side: what CapsFusion, VeCLIP and
-- Apple's "Revisit large-scale image-caption data" compare between alt texts
-- and synthetic captions. Sources: the alt text, BLIP's greedy recaption, and
-- the fusion of the two.
--   LAKECAP_CLIP_MODEL=... LAKECAP_CAPTION_MODEL=... LAKECAP_LLM_MODEL=... \
--     lakecap run sql/eval_captions.sql -D LAKE=sample_lake/
-- Per source, over the images that decode and the source's non-NULL captions:
--   rows, mean_words, median_words, vocab (distinct lower-cased words),
--   distinct_1 and distinct_2 (Li et al. 2016: corpus distinct n-grams over
--   all n-grams), mean_chars: caption_stats;
--   clip_score: mean clip_score of the caption against its image on
--   lakecap.clip_model: 100 × max(cos, 0), DataComp's scale (Hessel et al.
--   2021's CLIPScore is 2.5 × max(cos, 0): divide by 40 to compare).
-- Departures: the papers tokenise with their models' tokenizers; words here
-- are whitespace-separated, lower-cased, punctuation kept.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

CREATE TABLE pool AS
SELECT key, img, alt, recaption(img) AS caption FROM lake WHERE image_error(img) IS NULL;

CREATE TABLE captions AS
SELECT 'alt' AS source, key, img, alt AS caption FROM pool
UNION ALL
SELECT 'recaption', key, img, caption FROM pool
UNION ALL
SELECT 'fused', key, img, fuse(alt, caption) FROM pool;

SELECT source, s['rows'] AS rows, round(s['mean_words'], 2) AS mean_words,
       s['median_words'] AS median_words, s['vocab'] AS vocab,
       round(s['distinct_1'], 4) AS distinct_1, round(s['distinct_2'], 4) AS distinct_2,
       round(s['mean_chars'], 1) AS mean_chars, round(clip_score, 2) AS clip_score
FROM (SELECT source, caption_stats(caption) AS s, avg(clip_score(img, caption)) AS clip_score
      FROM captions GROUP BY source)
ORDER BY source;
