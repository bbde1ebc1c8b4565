-- TechEmpower's pipelining script: each wrk request carries `depth` HTTP requests.
init = function(args)
   local r = {}
   local depth = tonumber(args[1]) or 1
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
