-- ALIP's sample and pair weights (Yang et al., "ALIP: Adaptive Language-Image
-- Pre-training with Synthetic Caption", ICCV 2023), static: the dataset mean
-- stands in for the paper's running mean over training.
--   s_tc: alt text vs synthetic caption (CLIP text tower); s_ir, s_ic: image vs
--   each (CLIP cosines, raw); m_*: their dataset means.
--   W_s   = min(exp(2 (s_tc - m_tc)), 1)                       sample weight
--   W_raw = exp(2 (s_ir - m_ir)) where s_tc < m_tc, else 1      alt-text pair weight
--   W_cap = exp(2 (s_ic - m_ic)) where s_tc < m_tc, else 1      caption pair weight
--   LAKECAP_CLIP_MODEL=openai/clip-vit-base-patch32 LAKECAP_TEXT_MODEL=openai/clip-vit-base-patch32 \
--     lakecap run sql/alip_weights.sql -D LAKE=sample_lake/ \
--     -D CAPTIONS=sample_lake.captions.parquet -D OUT=out/alip/
-- CAPTIONS: a (key, caption) table of synthetic captions. embed_text must use
-- the same CLIP model (its text tower) as embed_image.

CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '${LAKE}';
CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '${CAPTIONS}';

CREATE TABLE sims AS
SELECT key, cosine(vr, vc) AS s_tc, cosine(vi, vr) AS s_ir, cosine(vi, vc) AS s_ic FROM
  (SELECT l.key, embed_image(l.img) AS vi, embed_text(l.alt) AS vr, embed_text(c.caption) AS vc
   FROM lake l JOIN captions c ON c.key = l.key
   WHERE image_error(l.img) IS NULL AND l.alt IS NOT NULL AND c.caption IS NOT NULL)
WHERE vi IS NOT NULL AND vr IS NOT NULL AND vc IS NOT NULL;

CREATE TABLE means AS SELECT avg(s_tc) AS m_tc, avg(s_ir) AS m_ir, avg(s_ic) AS m_ic FROM sims;

CREATE TABLE weights AS
SELECT key, s_tc, s_ir, s_ic,
       least(exp(2 * (s_tc - m_tc)), 1.0) AS w_s,
       CASE WHEN s_tc < m_tc THEN exp(2 * (s_ir - m_ir)) ELSE 1.0 END AS w_raw,
       CASE WHEN s_tc < m_tc THEN exp(2 * (s_ic - m_ic)) ELSE 1.0 END AS w_cap
FROM sims, means;

COPY (SELECT * FROM weights ORDER BY key) TO '${OUT}' STORED AS PARQUET;

SELECT count(*) AS pairs,
       sum(CASE WHEN w_s < 1 THEN 1 ELSE 0 END) AS down_weighted,
       round(min(w_s), 4) AS min_w_s, round(max(w_s), 4) AS max_w_s,
       round(avg(w_raw), 4) AS mean_w_raw, round(avg(w_cap), 4) AS mean_w_cap
FROM weights;
