-- bench/flow.lua: the whole install flow under wrk, through nginx to the
-- FastCGI servers.  Each wrk thread keeps a queue of the states its
-- /slack/install answers issued; its next request takes one, if any, to
-- /slack/oauth_redirect with that state in the query and in the cookie (the
-- code is any string: bench/fake_slack accepts every code).  Otherwise it
-- asks /slack/install again.  So each connection runs install, redirect,
-- install, redirect...  A flow counts when the redirect answers 200 with the
-- success page; done() prints the counts as "flow: KEY VALUE" lines.

local cookie_name = os.getenv("BENCH_COOKIE") or "slack-app-oauth-state"
local threads = {}
local id = 0

function setup(thread)
	id = id + 1
	thread:set("tid", id)
	table.insert(threads, thread)
end

local q, qh, qt = {}, 1, 0
local n = 0
installs, flows, bad = 0, 0, 0

function request()
	if qt >= qh then
		local s = q[qh]
		q[qh] = nil
		qh = qh + 1
		n = n + 1
		return wrk.format("GET", "/slack/oauth_redirect?code=bench-" .. tid ..
		    "-" .. n .. "&state=" .. s, { Cookie = cookie_name .. "=" .. s })
	end
	return wrk.format("GET", "/slack/install")
end

function response(status, headers, body)
	local sc
	for k, v in pairs(headers) do
		if k:lower() == "set-cookie" then sc = v end
	end
	local state = sc and sc:match("^" .. cookie_name:gsub("%-", "%%-") .. "=([^;]*)")
	if state and #state > 0 then
		if status == 200 then
			installs = installs + 1
			qt = qt + 1
			q[qt] = state
		else
			bad = bad + 1
		end
	elseif status == 200 and body:find("Example Team", 1, true) then
		flows = flows + 1
	else
		bad = bad + 1
		if bad <= 3 then
			io.stderr:write("flow.lua: unexpected answer " .. status .. ": " ..
			    body:sub(1, 200):gsub("%s+", " ") .. "\n")
		end
	end
end

function done(summary, latency, requests)
	local i, f, b = 0, 0, 0
	for _, t in ipairs(threads) do
		i = i + t:get("installs")
		f = f + t:get("flows")
		b = b + t:get("bad")
	end
	io.write(string.format("flow: installs %d\nflow: flows %d\nflow: bad %d\n" ..
	    "flow: seconds %.3f\n", i, f, b, summary.duration / 1e6))
end
