-- wrk script for the soak test: a mix of what partners do — 60 % reads by id, 25 %
-- searches (by name, by birth date with a sort, by identifier), 15 % creates.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE") or "ids.txt") do ids[#ids + 1] = line end
local searches = {
  "/fhir/Patient?name=seed1",
  "/fhir/Patient?birthdate=ge1970&_sort=-birthdate&_count=20",
  "/fhir/Patient?identifier=urn:mrn|soak",
  "/fhir/Patient?family:contains=eed2&_total=accurate",
}
local body = '{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"soak"}],"name":[{"family":"Soak","given":["Mark"]}],"gender":"female","birthDate":"1980-02-29"}'
request = function()
  local r = math.random(100)
  if r <= 60 then
    return wrk.format("GET", "/fhir/Patient/" .. ids[math.random(#ids)])
  elseif r <= 85 then
    return wrk.format("GET", searches[math.random(#searches)])
  else
    return wrk.format("POST", "/fhir/Patient", {["Content-Type"] = "application/fhir+json"}, body)
  end
end
