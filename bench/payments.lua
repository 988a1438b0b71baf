-- POST one payment per request, each for the next invoice of the file INVOICES names.
local ids = {}
for line in io.lines(os.getenv("INVOICES")) do ids[#ids + 1] = line end
local next_id = 0
local key = os.getenv("API_KEY")
local env = os.getenv("ENVIRONMENT")
local amount = os.getenv("AMOUNT") or "10.00"

request = function()
  next_id = next_id + 1
  local id = ids[next_id] or ids[#ids]
  local body = '{"amount": ' .. amount .. ', "currency": "usd", "destination_id": "' .. id ..
    '", "destination_type": "INVOICE", "payment_method_type": "CARD", ' ..
    '"process_payment": true, "payment_gateway": "stripe"}'
  return wrk.format("POST", "/api/v1/payments", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["X-Environment-ID"] = env,
  }, body)
end


done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non_2xx": %d, "invoices": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout + summary.errors.status, summary.errors.status, #ids))
end
