-- wrk script: POST Observations of 50 codes over 2,000 patients (references only).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
local n = 0
request = function()
  n = n + 1
  local code = 1000 + math.random(50)
  local patient = math.random(2000)
  local body = string.format(
    '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"%d-1"}]},' ..
    '"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"20%02d-%02d-%02dT10:00:00Z",' ..
    '"valueQuantity":{"value":%d.%d,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}}',
    code, patient, 10 + math.random(15), math.random(12), math.random(28), math.random(200), math.random(9))
  return wrk.format(nil, "/fhir/Observation", nil, body)
end
