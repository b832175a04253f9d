-- wrk script: GET a random Patient from ids.txt with the bearer token in $TOKEN.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE") or "ids.txt") do ids[#ids + 1] = line end
local token = os.getenv("TOKEN")
local base = os.getenv("BASE_PATH") or "/fhir"
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
request = function()
  return wrk.format("GET", base .. "/Patient/" .. ids[math.random(#ids)])
end
