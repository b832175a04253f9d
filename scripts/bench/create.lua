-- wrk script: POST a small Patient.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.body = '{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"bench"}],"name":[{"family":"Bench","given":["Mark"]}],"gender":"female","birthDate":"1980-02-29"}'
