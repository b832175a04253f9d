-- wrk script: token search for one of the 50 codes, first page of 50.
request = function()
  return wrk.format("GET", string.format("/fhir/Observation?code=http://loinc.org|%d-1&_count=50", 1000 + math.random(50)))
end
