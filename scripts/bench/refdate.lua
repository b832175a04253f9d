-- wrk script: reference + date search.
request = function()
  return wrk.format("GET", string.format("/fhir/Observation?subject=Patient/p%d&date=ge2015-01-01&_count=50", math.random(2000)))
end
