# The session of session.sh with Ruby's standard library: submit a job, watch it until it is
# done, read a frame's log, kill a second job.  DRQUEUE_MASTER and DRQUEUE_TOKEN as there.
require "json"
require "net/http"

def call(method, path, body = nil) # the answer; an error raises the master's one line
  uri = URI("#{ENV.fetch("DRQUEUE_MASTER")}/api/v1#{path}")
  request = Net::HTTP.const_get(method).new(uri, "Content-Type" => "application/json",
                                                 "Authorization" => "Bearer #{ENV.fetch("DRQUEUE_TOKEN")}")
  request.body = body.to_json if body
  answer = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https") { |http| http.request(request) }
  raise "error: #{JSON.parse(answer.body)["detail"]}" unless answer.is_a?(Net::HTTPSuccess)
  answer.content_type == "application/json" ? JSON.parse(answer.body) : answer.body
end

job = call("Post", "/jobs", renderer: "shell", start: 1, end: 4, block_size: 2,
                            params: { cmd: "echo rendering frame {frame}" })["id"]
puts "submitted job #{job}"
since = 0
loop do # its events as they come, until the job has ended or was stopped
  status = call("Get", "/jobs/#{job}")["status"]
  call("Get", "/jobs/#{job}/events?since=#{since}").each { |e| puts "  #{e["kind"]}: #{e["message"]}"; since = e["id"] }
  break if %w[finished error cancelled stopped].include?(status)
  sleep 1
end
done = call("Get", "/jobs/#{job}")
puts "job #{job} #{done["status"]}: #{done["counts"]["finished"]}/#{done["counts"]["total"]} tasks"
puts call("Get", "/jobs/#{job}/log?frame=3")
second = call("Post", "/jobs", renderer: "shell", start: 1, end: 100, params: { cmd: "sleep 60" })["id"]
sleep 1 until call("Get", "/jobs/#{second}")["counts"]["running"] > 0
puts "killed job #{second}: #{call("Post", "/jobs/#{second}/kill")["status"]}"
