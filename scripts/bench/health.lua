-- wrk script: the static /health answer (the ceiling of the HTTP stack on this machine).
request = function()
  return wrk.format("GET", "/health")
end
