# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dexcom_exporter_global_optspecs
    string join \n web.listen-address= web.telemetry-path= web.config.file= log.level= log.format= dexcom.username= dexcom.account-id= dexcom.region= dexcom.base-url= dexcom.password-file= dexcom.reading-interval= dexcom.request-timeout= glucose.max-age= config.file= storage.path= remote-write.url= shard.index= shard.count= demo h/help V/version
end

function __fish_dexcom_exporter_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_dexcom_exporter_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_dexcom_exporter_using_subcommand
    set -l cmd (__fish_dexcom_exporter_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l web.listen-address -d 'Address to serve metrics on. Keep it on loopback unless you protect it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l web.telemetry-path -d 'Path under which metrics are served' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l web.config.file -d 'TLS and basic-auth settings in the Prometheus exporter-toolkit format; changes to it and to the certificates it names apply without a restart' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l log.level -d 'Log level: error, warn, info or debug' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Normal operation'
debug\t'Every poll and schedule decision'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l log.format -d 'Log format: text or json' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.username -d 'Publisher username, e-mail, or phone number as +15551234567 (not a follower\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.account-id -d 'Publisher account ID (a UUID), instead of the username, for e-mail/phone accounts' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.region -d 'Region the account is registered in: us, ous (outside the US, Canada included) or jp' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.base-url -d 'Share base URL, overriding the region\'s (e.g. a simulator\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.password-file -d 'File holding the password. Without it: DEXCOM_PASSWORD, then $CREDENTIALS_DIRECTORY/dexcom-password' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.reading-interval -d 'Time between sensor readings; polls are aligned to it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l dexcom.request-timeout -d 'Limit on one request to Share' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l glucose.max-age -d 'Glucose value and trend are withdrawn once the reading is older than this' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l config.file -d 'YAML file listing several accounts (example: /usr/share/doc/dexcom-exporter/examples/config.example.yml, in the repository deploy/config.example.yml)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l storage.path -d 'Directory for state that must survive a restart (the login gate\'s memory of failed attempts, so neither a restart loop nor `check` can lock the Dexcom account). The same for the service, check and backfill. Default: $STATE_DIRECTORY (systemd sets it), else /var/lib/dexcom_exporter when it exists (the package\'s), else $XDG_STATE_HOME/dexcom_exporter or ~/.local/state/dexcom_exporter. `none`: keep nothing (throwaway runs only)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l remote-write.url -d 'Push every reading at its sensor time to this Prometheus remote-write receiver (e.g. http://127.0.0.1:9090/api/v1/write). For credentials, TLS or several receivers use a `remote_write:` section in --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l shard.index -d 'This replica\'s shard, 0 to --shard.count minus 1: it polls only the accounts whose stable hash of the account name modulo the count equals it (a StatefulSet\'s pod index)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l shard.count -d 'How many replicas share the accounts of --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -l demo -d 'Run against a built-in Share simulator with demo accounts; no Dexcom account needed'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -s V -l version -d 'Print version'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -f -a "check" -d 'Check the configuration and every account once, and say what is wrong: reads the same flags, environment and --config.file as the service, resolves and connects to each account\'s Share host, logs in through the same login gate and state directory (a password the gate holds back is not sent: it says until when and why), reads the newest reading and prints one line per account. Beside the running service (which holds the state directory) it logs in to nothing and reports what the service shows. Exit 0 when every account has a current reading, 1 otherwise, 2 on a configuration error. Run it first after installing'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -f -a "backfill" -d 'Print the last 24 hours of readings of every configured account as OpenMetrics text with sensor timestamps, for `promtool tsdb create-blocks-from openmetrics`: fills Prometheus with history without remote write. Logs in like the exporter (same login limits, same --storage.path, which it locks: it refuses to run beside the service). While the service runs, fetch the same text from it instead, with no second login: `curl http://127.0.0.1:18018/api/v1/history`'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -f -a "drill" -d 'Drill the night alarm end to end: asks Prometheus whether it reads the exporter, has the alert rules loaded, fires Watchdog and sends to Alertmanager (its Watchdog seen there); asks Alertmanager for its running configuration (placeholders left, routes that reach no phone, a heartbeat missing or that would not page) and for silences that mute an alarm; then sends a test urgent low and a test "glucose cannot be seen" through their routes (your phone rings: acknowledge it), watches whether each integration took them, and ends them, watching the all-clear go out. Needs no Dexcom account. Exit 0 when the chain works, 1 when something would not ring, 2 when Prometheus or Alertmanager cannot be reached, 130 when interrupted (Ctrl-C ends the test alarms first)'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l output -d '`text` for people, `json` for scripts' -r -f -a "text\t'Lines for people: what was found and what it means'
json\t'One JSON document, for scripts'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l web.listen-address -d 'Address to serve metrics on. Keep it on loopback unless you protect it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l web.telemetry-path -d 'Path under which metrics are served' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l web.config.file -d 'TLS and basic-auth settings in the Prometheus exporter-toolkit format; changes to it and to the certificates it names apply without a restart' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l log.level -d 'Log level: error, warn, info or debug' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Normal operation'
debug\t'Every poll and schedule decision'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l log.format -d 'Log format: text or json' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.username -d 'Publisher username, e-mail, or phone number as +15551234567 (not a follower\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.account-id -d 'Publisher account ID (a UUID), instead of the username, for e-mail/phone accounts' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.region -d 'Region the account is registered in: us, ous (outside the US, Canada included) or jp' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.base-url -d 'Share base URL, overriding the region\'s (e.g. a simulator\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.password-file -d 'File holding the password. Without it: DEXCOM_PASSWORD, then $CREDENTIALS_DIRECTORY/dexcom-password' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.reading-interval -d 'Time between sensor readings; polls are aligned to it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l dexcom.request-timeout -d 'Limit on one request to Share' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l glucose.max-age -d 'Glucose value and trend are withdrawn once the reading is older than this' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l config.file -d 'YAML file listing several accounts (example: /usr/share/doc/dexcom-exporter/examples/config.example.yml, in the repository deploy/config.example.yml)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l storage.path -d 'Directory for state that must survive a restart (the login gate\'s memory of failed attempts, so neither a restart loop nor `check` can lock the Dexcom account). The same for the service, check and backfill. Default: $STATE_DIRECTORY (systemd sets it), else /var/lib/dexcom_exporter when it exists (the package\'s), else $XDG_STATE_HOME/dexcom_exporter or ~/.local/state/dexcom_exporter. `none`: keep nothing (throwaway runs only)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l remote-write.url -d 'Push every reading at its sensor time to this Prometheus remote-write receiver (e.g. http://127.0.0.1:9090/api/v1/write). For credentials, TLS or several receivers use a `remote_write:` section in --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l shard.index -d 'This replica\'s shard, 0 to --shard.count minus 1: it polls only the accounts whose stable hash of the account name modulo the count equals it (a StatefulSet\'s pod index)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l shard.count -d 'How many replicas share the accounts of --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l reset-gate -d 'Forget the failed logins in a row the login gate counts for each account, so the next login (this check\'s) goes at once. Dexcom locks an account after about five failed logins in a row and the gate stops at four: reset only after fixing the password, region and username, or the next failure may lock the account (and silence the Dexcom Follow app). Needs the service stopped'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -l demo -d 'Run against a built-in Share simulator with demo accounts; no Dexcom account needed'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l output -d 'Write to this file instead of standard output' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l web.listen-address -d 'Address to serve metrics on. Keep it on loopback unless you protect it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l web.telemetry-path -d 'Path under which metrics are served' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l web.config.file -d 'TLS and basic-auth settings in the Prometheus exporter-toolkit format; changes to it and to the certificates it names apply without a restart' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l log.level -d 'Log level: error, warn, info or debug' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Normal operation'
debug\t'Every poll and schedule decision'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l log.format -d 'Log format: text or json' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.username -d 'Publisher username, e-mail, or phone number as +15551234567 (not a follower\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.account-id -d 'Publisher account ID (a UUID), instead of the username, for e-mail/phone accounts' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.region -d 'Region the account is registered in: us, ous (outside the US, Canada included) or jp' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.base-url -d 'Share base URL, overriding the region\'s (e.g. a simulator\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.password-file -d 'File holding the password. Without it: DEXCOM_PASSWORD, then $CREDENTIALS_DIRECTORY/dexcom-password' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.reading-interval -d 'Time between sensor readings; polls are aligned to it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l dexcom.request-timeout -d 'Limit on one request to Share' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l glucose.max-age -d 'Glucose value and trend are withdrawn once the reading is older than this' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l config.file -d 'YAML file listing several accounts (example: /usr/share/doc/dexcom-exporter/examples/config.example.yml, in the repository deploy/config.example.yml)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l storage.path -d 'Directory for state that must survive a restart (the login gate\'s memory of failed attempts, so neither a restart loop nor `check` can lock the Dexcom account). The same for the service, check and backfill. Default: $STATE_DIRECTORY (systemd sets it), else /var/lib/dexcom_exporter when it exists (the package\'s), else $XDG_STATE_HOME/dexcom_exporter or ~/.local/state/dexcom_exporter. `none`: keep nothing (throwaway runs only)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l remote-write.url -d 'Push every reading at its sensor time to this Prometheus remote-write receiver (e.g. http://127.0.0.1:9090/api/v1/write). For credentials, TLS or several receivers use a `remote_write:` section in --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l shard.index -d 'This replica\'s shard, 0 to --shard.count minus 1: it polls only the accounts whose stable hash of the account name modulo the count equals it (a StatefulSet\'s pod index)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l shard.count -d 'How many replicas share the accounts of --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -l demo -d 'Run against a built-in Share simulator with demo accounts; no Dexcom account needed'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand backfill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l prometheus.url -d 'Prometheus\'s address' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l alertmanager.url -d 'Alertmanager\'s address' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l output -d '`text` (a line per step, as it happens) for people, `json` for scripts' -r -f -a "text\t'Lines for people: what was found and what it means'
json\t'One JSON document, for scripts'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l web.listen-address -d 'Address to serve metrics on. Keep it on loopback unless you protect it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l web.telemetry-path -d 'Path under which metrics are served' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l web.config.file -d 'TLS and basic-auth settings in the Prometheus exporter-toolkit format; changes to it and to the certificates it names apply without a restart' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l log.level -d 'Log level: error, warn, info or debug' -r -f -a "error\t'Errors only'
warn\t'Warnings and errors'
info\t'Normal operation'
debug\t'Every poll and schedule decision'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l log.format -d 'Log format: text or json' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.username -d 'Publisher username, e-mail, or phone number as +15551234567 (not a follower\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.account-id -d 'Publisher account ID (a UUID), instead of the username, for e-mail/phone accounts' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.region -d 'Region the account is registered in: us, ous (outside the US, Canada included) or jp' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.base-url -d 'Share base URL, overriding the region\'s (e.g. a simulator\'s)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.password-file -d 'File holding the password. Without it: DEXCOM_PASSWORD, then $CREDENTIALS_DIRECTORY/dexcom-password' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.reading-interval -d 'Time between sensor readings; polls are aligned to it' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l dexcom.request-timeout -d 'Limit on one request to Share' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l glucose.max-age -d 'Glucose value and trend are withdrawn once the reading is older than this' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l config.file -d 'YAML file listing several accounts (example: /usr/share/doc/dexcom-exporter/examples/config.example.yml, in the repository deploy/config.example.yml)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l storage.path -d 'Directory for state that must survive a restart (the login gate\'s memory of failed attempts, so neither a restart loop nor `check` can lock the Dexcom account). The same for the service, check and backfill. Default: $STATE_DIRECTORY (systemd sets it), else /var/lib/dexcom_exporter when it exists (the package\'s), else $XDG_STATE_HOME/dexcom_exporter or ~/.local/state/dexcom_exporter. `none`: keep nothing (throwaway runs only)' -r -F
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l remote-write.url -d 'Push every reading at its sensor time to this Prometheus remote-write receiver (e.g. http://127.0.0.1:9090/api/v1/write). For credentials, TLS or several receivers use a `remote_write:` section in --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l shard.index -d 'This replica\'s shard, 0 to --shard.count minus 1: it polls only the accounts whose stable hash of the account name modulo the count equals it (a StatefulSet\'s pod index)' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l shard.count -d 'How many replicas share the accounts of --config.file' -r
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -l demo -d 'Run against a built-in Share simulator with demo accounts; no Dexcom account needed'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand drill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand help; and not __fish_seen_subcommand_from check backfill drill help" -f -a "check" -d 'Check the configuration and every account once, and say what is wrong: reads the same flags, environment and --config.file as the service, resolves and connects to each account\'s Share host, logs in through the same login gate and state directory (a password the gate holds back is not sent: it says until when and why), reads the newest reading and prints one line per account. Beside the running service (which holds the state directory) it logs in to nothing and reports what the service shows. Exit 0 when every account has a current reading, 1 otherwise, 2 on a configuration error. Run it first after installing'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand help; and not __fish_seen_subcommand_from check backfill drill help" -f -a "backfill" -d 'Print the last 24 hours of readings of every configured account as OpenMetrics text with sensor timestamps, for `promtool tsdb create-blocks-from openmetrics`: fills Prometheus with history without remote write. Logs in like the exporter (same login limits, same --storage.path, which it locks: it refuses to run beside the service). While the service runs, fetch the same text from it instead, with no second login: `curl http://127.0.0.1:18018/api/v1/history`'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand help; and not __fish_seen_subcommand_from check backfill drill help" -f -a "drill" -d 'Drill the night alarm end to end: asks Prometheus whether it reads the exporter, has the alert rules loaded, fires Watchdog and sends to Alertmanager (its Watchdog seen there); asks Alertmanager for its running configuration (placeholders left, routes that reach no phone, a heartbeat missing or that would not page) and for silences that mute an alarm; then sends a test urgent low and a test "glucose cannot be seen" through their routes (your phone rings: acknowledge it), watches whether each integration took them, and ends them, watching the all-clear go out. Needs no Dexcom account. Exit 0 when the chain works, 1 when something would not ring, 2 when Prometheus or Alertmanager cannot be reached, 130 when interrupted (Ctrl-C ends the test alarms first)'
complete -c dexcom_exporter -n "__fish_dexcom_exporter_using_subcommand help; and not __fish_seen_subcommand_from check backfill drill help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
