-- DataComp's "basic" filtering baseline (Gadre et al., "DataComp: In search
-- of the next generation of multimodal datasets", 2023, section 3.4 and
-- appendix): English captions of more than 2 words and more than 5
-- characters, images whose shorter side is at least 200 px with an aspect
-- ratio of at most 3, then the top 30% of what is left by CLIPScore.
--   LAKECAP_CLIP_MODEL=openai/clip-vit-base-patch32 \
--     lakecap run sql/datacomp_basic.sql -D LAKE=sample_lake/ -D OUT=out/datacomp_basic/
-- Departures: language is whatlang's top-1 guess (alt_quality's lang_guess
-- = 'eng'), not fastText lid.176's; the 30% is a fraction of this pool by approx_percentile_cont
-- (DataComp's fraction of its pool), not a fixed score; words are alt_quality's.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';

-- The text and image rules, in one pass (image headers only, no decoding).
CREATE TABLE basic AS
SELECT key, url, alt, img, crawl
FROM (SELECT *, alt_quality(alt) AS q, image_info(img) AS i FROM lake)
WHERE q['lang_guess'] = 'eng' AND q['words'] > 2 AND q['chars'] > 5
  AND least(i['width'], i['height']) >= 200
  AND greatest(i['width'], i['height']) <= 3 * least(i['width'], i['height']);

CREATE TABLE scored AS SELECT *, clip_score(img, alt) AS score FROM basic;

-- The score at the 70th percentile of the filtered pool: rows at or above it are its top 30%.
CREATE TABLE cut AS
SELECT approx_percentile_cont(0.7) WITHIN GROUP (ORDER BY score) AS p70 FROM scored;

COPY (SELECT s.key, s.url, s.alt, s.img, s.score, s.crawl
      FROM scored s, cut WHERE s.score >= cut.p70 ORDER BY s.key)
TO '${OUT}' STORED AS PARQUET PARTITIONED BY (crawl);

-- rows at the threshold all stay (a pool of equal scores keeps more than 30%).
SELECT (SELECT count(*) FROM lake) AS rows,
       count(*) AS passed_text_and_image_rules,
       sum(CASE WHEN score >= p70 THEN 1 ELSE 0 END) AS kept,
       min(CASE WHEN score >= p70 THEN score END) AS min_kept_score,
       max(CASE WHEN score < p70 THEN score END) AS max_dropped_score
FROM scored, cut;
