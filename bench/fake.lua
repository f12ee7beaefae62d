-- bench/fake.lua: bench/fake_slack alone, as the redirect endpoint uses it:
-- oauth.v2.access then auth.test, alternately, on each connection.
local n = 0
function request()
	n = n + 1
	if n % 2 == 1 then
		return wrk.format("POST", "/api/oauth.v2.access", {
		    ["Content-Type"] = "application/x-www-form-urlencoded",
		    ["Authorization"] = "Basic MTIzNDU2Nzg5MDEyLjEyMzQ1Njc4OTAxMjM6c2VjcmV0" },
		    "code=bench-" .. n)
	end
	return wrk.format("POST", "/api/auth.test", {
	    ["Content-Type"] = "application/x-www-form-urlencoded",
	    ["Authorization"] = "Bearer xoxb-1000000001-000000000001-benchbenchbenchbenchbench" })
end
