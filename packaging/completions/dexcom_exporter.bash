_dexcom_exporter() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="dexcom_exporter"
                ;;
            dexcom_exporter,backfill)
                cmd="dexcom_exporter__subcmd__backfill"
                ;;
            dexcom_exporter,check)
                cmd="dexcom_exporter__subcmd__check"
                ;;
            dexcom_exporter,drill)
                cmd="dexcom_exporter__subcmd__drill"
                ;;
            dexcom_exporter,help)
                cmd="dexcom_exporter__subcmd__help"
                ;;
            dexcom_exporter__subcmd__help,backfill)
                cmd="dexcom_exporter__subcmd__help__subcmd__backfill"
                ;;
            dexcom_exporter__subcmd__help,check)
                cmd="dexcom_exporter__subcmd__help__subcmd__check"
                ;;
            dexcom_exporter__subcmd__help,drill)
                cmd="dexcom_exporter__subcmd__help__subcmd__drill"
                ;;
            dexcom_exporter__subcmd__help,help)
                cmd="dexcom_exporter__subcmd__help__subcmd__help"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        dexcom_exporter)
            opts="-h -V --web.listen-address --web.telemetry-path --web.config.file --log.level --log.format --dexcom.username --dexcom.account-id --dexcom.region --dexcom.base-url --dexcom.password-file --dexcom.reading-interval --dexcom.request-timeout --glucose.max-age --config.file --storage.path --remote-write.url --shard.index --shard.count --demo --help --version check backfill drill help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --web.listen-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.telemetry-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log.level)
                    COMPREPLY=($(compgen -W "error warn info debug" -- "${cur}"))
                    return 0
                    ;;
                --log.format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --dexcom.username)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.account-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.base-url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.password-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.reading-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.request-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --glucose.max-age)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --storage.path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --remote-write.url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.index)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__backfill)
            opts="-h --output --web.listen-address --web.telemetry-path --web.config.file --log.level --log.format --dexcom.username --dexcom.account-id --dexcom.region --dexcom.base-url --dexcom.password-file --dexcom.reading-interval --dexcom.request-timeout --glucose.max-age --config.file --storage.path --remote-write.url --shard.index --shard.count --demo --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --output)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.listen-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.telemetry-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log.level)
                    COMPREPLY=($(compgen -W "error warn info debug" -- "${cur}"))
                    return 0
                    ;;
                --log.format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --dexcom.username)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.account-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.base-url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.password-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.reading-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.request-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --glucose.max-age)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --storage.path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --remote-write.url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.index)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__check)
            opts="-h --output --reset-gate --web.listen-address --web.telemetry-path --web.config.file --log.level --log.format --dexcom.username --dexcom.account-id --dexcom.region --dexcom.base-url --dexcom.password-file --dexcom.reading-interval --dexcom.request-timeout --glucose.max-age --config.file --storage.path --remote-write.url --shard.index --shard.count --demo --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --output)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --web.listen-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.telemetry-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log.level)
                    COMPREPLY=($(compgen -W "error warn info debug" -- "${cur}"))
                    return 0
                    ;;
                --log.format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --dexcom.username)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.account-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.base-url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.password-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.reading-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.request-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --glucose.max-age)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --storage.path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --remote-write.url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.index)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__drill)
            opts="-h --prometheus.url --alertmanager.url --output --web.listen-address --web.telemetry-path --web.config.file --log.level --log.format --dexcom.username --dexcom.account-id --dexcom.region --dexcom.base-url --dexcom.password-file --dexcom.reading-interval --dexcom.request-timeout --glucose.max-age --config.file --storage.path --remote-write.url --shard.index --shard.count --demo --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --prometheus.url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --alertmanager.url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --output)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --web.listen-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.telemetry-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --web.config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log.level)
                    COMPREPLY=($(compgen -W "error warn info debug" -- "${cur}"))
                    return 0
                    ;;
                --log.format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                --dexcom.username)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.account-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.base-url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.password-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.reading-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dexcom.request-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --glucose.max-age)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --config.file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --storage.path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --remote-write.url)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.index)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --shard.count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__help)
            opts="check backfill drill help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__help__subcmd__backfill)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__help__subcmd__check)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__help__subcmd__drill)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
        dexcom_exporter__subcmd__help__subcmd__help)
            opts=""
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 3 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _dexcom_exporter -o nosort -o bashdefault -o default dexcom_exporter
else
    complete -F _dexcom_exporter -o bashdefault -o default dexcom_exporter
fi
