CREATE TABLE IF NOT EXISTS events.daily_summary (event_date DATE, orders INT64, revenue FLOAT64, top_category STRING);
DELETE FROM events.daily_summary WHERE event_date = @run_date;
INSERT INTO events.daily_summary (event_date, orders, revenue, top_category)
SELECT
  @run_date,
  (SELECT COUNT(*) FROM consume.order_lines),
  (SELECT ROUND(SUM(amount), 2) FROM consume.order_lines),
  (SELECT category FROM consume.product_daily ORDER BY revenue DESC LIMIT 1);
