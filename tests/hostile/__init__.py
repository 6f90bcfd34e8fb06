"""The hostile-input suite (issue 12): every failure the 577-case attack found, as a test.

One file per family: test_inputs (files, names, config, flags), test_upstream (a malicious or
broken service on loopback), test_cache (tampering), test_state_disk (full/read-only disks,
damaged state), test_crash_points (SIGKILLs, secrets, finite numbers through the CLI),
test_csv_fuzz (hypothesis over the CSV reader), test_doctor. Tests outside this folder are
named by their path under tests/. `U` = tests/hostile/test_upstream.py, `I` = test_inputs.py,
`C` = test_cache.py, `S` = test_state_disk.py, `K` = test_crash_points.py.

Security
  CoinGecko key header to a redirect origin:
    U::test_an_offsite_redirect_never_reaches_the_other_origin[coingecko]
  SEC User-Agent identity to a redirect:
    U::test_an_offsite_redirect_never_reaches_the_other_origin[sec_edgar]
  query keys to a redirect origin:
    U::test_an_offsite_redirect_never_reaches_the_other_origin[fmp]
  analysis file symlinked out of the root:
    I::test_a_symlink_out_of_the_data_root_is_skipped_and_listed
    I::test_a_symlink_out_of_the_data_root_never_reaches_the_report
  value-file path outside the cache dir:
    C::test_value_file_outside_the_namespace_is_never_read_copied_or_deleted
    (relative, absolute, symlinked dir; discover's read, verify, optimize)
  edited envelope header (expires_at 2999):
    C::test_an_edited_byte_anywhere_fails_verify_and_is_never_served
    C::test_a_peek_of_an_edited_header_is_a_miss_and_quarantined
  AV key with + % # ? reaches the report:
    services/test_outbound.py::test_keys_with_url_special_characters_never_leak
    ::test_every_encoding_of_a_secret_is_masked
    K::test_a_secret_with_url_special_characters_is_nowhere_under_the_root
Silent loss
  SEC slow: filings vanish, no gap, exit 0:
    discovery/fetch/test_engine.py::test_filings_scheduled_while_the_stage_drains_are_all_awaited
    ::test_phase_two_scheduled_after_everything_else_finished_is_awaited
    U::test_a_stalled_service_owes_gaps_not_silence
  IMF 100 MB answer accepted and cached:
    U::test_hostile_bodies_end_as_bad_response[imf-huge]
  IMF decompression bomb accepted:
    U::test_hostile_bodies_end_as_bad_response[imf-bomb]
  SEC NaN/Infinity: filings lost, no gap:
    U::test_nonfinite_numbers_keep_every_filing
    services/test_outbound.py::test_sec_filings_with_nonfinite_numbers_keep_every_filing
  two processes overrun SEC's limit:
    e2e/test_team.py::test_cron_refresh_beside_discover_stay_within_every_limit
    services/coord/test_processes.py::test_three_processes_never_exceed_a_shared_limit
Resource exhaustion
  gzip bomb to 2.1 GB RSS:
    U::test_peak_rss_stays_bounded_under_hostile_bodies[*-bomb] (+ [*-huge])
  4 GB sparse analysis file read whole:
    I::test_a_4gb_sparse_file_is_refused_without_being_read
  50 MB one-line analysis file → 50 MB report:
    I::test_a_one_line_file_does_not_become_a_large_report
  200,000 headings took 135 s:
    I::test_200000_headings_parse_in_linear_time
  trickled body stalls the run:
    U::test_a_trickling_service_ends_within_the_deadline[httpx, curl]
  trickled headers stall the run:
    U::test_trickled_headers_end_within_the_deadline
  JSON 100,000 deep: RecursionError:
    U::test_hostile_bodies_end_as_bad_response[imf-deep]
  redirect loop ran 287 s:
    U::test_hostile_bodies_end_as_bad_response[fmp-redirect_loop]
  malformed Yahoo body retried (136 for 34):
    U::test_hostile_bodies_end_as_bad_response[yahoo_finance-malformed]
Crashes
  disk full: sqlite3.OperationalError:
    S::test_sqlite_full_is_a_typed_cache_error_and_nothing_is_half_written
    S::test_a_hub_over_a_full_disk_keeps_the_answers_and_reports_disk_full
    S::test_discover_on_a_full_disk_writes_its_report_with_disk_full_gaps
    S::test_discover_whose_report_does_not_fit_says_so_in_one_sentence
  a full disk left a namespace that verify quarantined:
    S::test_discover_on_a_small_full_file_system_ends_in_a_sentence_or_gaps (then verify)
  refresh killed 0.8 s in: imf "readonly":
    C::test_a_namespace_left_by_a_killed_writer_is_verified_and_served_not_quarantined
    K::test_random_sigkills_of_discover_and_refresh_then_a_rerun
  corrupt cache.db:
    C::test_a_damaged_namespace_is_moved_aside_and_rebuilt_on_the_fly[corrupt]
  truncated cache.db:
    C::...[truncated]
  garbage cache.db:
    C::...[garbage]
  cache.db that is a directory:
    C::...[db_is_a_directory]
  namespace path that is a file:
    C::...[namespace_is_a_file]  (+ [namespace_symlink_out_of_the_root])
  — all six through discover:
    C::test_discover_over_damaged_namespaces_rebuilds_them_and_says_so
    C::test_damage_found_mid_run_rebuilds_and_the_run_goes_on
  garbage quota database:
    S::test_a_damaged_quota_ledger_is_rebuilt_and_todays_quotas_count_as_spent[garbage]
  directory quota database:
    S::...[directory]
    S::test_discover_over_a_damaged_state_goes_on_with_quotas_spent
  state/ that is a file:
    S::test_a_state_path_that_is_a_file_is_moved_aside_and_rebuilt
  lock path that is a directory:
    S::test_a_lock_path_that_is_a_directory_is_moved_aside
    S::test_refresh_with_a_lock_path_that_is_a_directory_runs
  nested JSON in the stats table:
    C::test_nested_json_in_the_stats_table_never_recurses
  _quarantine symlinked out of the root:
    C::test_a_symlinked_quarantine_is_never_written_through[_quarantine, _quarantine/fmp]
  1e309 / 400-digit values:
    I::test_huge_numbers_are_refused_in_plain_words[1e309, 400-digits, 1e308, -inf]
  a sum that overflows:
    I::test_sums_cannot_overflow
  np.float64(inf) in messages:
    I::one_sentence (every refusal checked)
    K::test_every_number_in_the_report_is_finite_when_upstreams_send_nonfinite
  inf/nan reach the JSON writer:
    K::test_every_number_in_the_report_is_finite_when_upstreams_send_nonfinite
    K::test_random_sigkills_of_discover_and_refresh_then_a_rerun (every report walked)
  symlink loop / non-UTF-8 analysis file name:
    I::test_odd_names_are_skipped_with_a_note_never_a_crash
  CR-only line endings:
    I::test_classic_mac_line_endings_read_like_any_other
  portfolio name too long for a file name:
    I::test_a_portfolio_name_too_long_for_a_file_name
    I::test_a_portfolio_file_whose_name_is_too_long_for_its_report
  read-only data root:
    S::test_a_read_only_data_root_is_one_sentence_exit_3_and_nothing_changes
    S::test_cache_commands_on_a_read_only_root_change_nothing
    I::test_an_unwritable_data_root_is_refused_before_anything_runs[root]
  immutable outputs/:
    I::test_an_unwritable_data_root_is_refused_before_anything_runs[outputs]
  data root that is a file:
    I::test_a_data_root_that_is_a_file
  config value inf (ZeroDivisionError):
    I::test_bad_config_values_are_one_sentence[inf-rate, nan]
  --horizon-hours inf:
    I::test_horizon_hours_inf
  garbage TRADESCOUT_SERVICES JSON:
    I::test_garbage_services_json_in_the_environment
  invalid base URL (IPv6, port, NUL):
    I::test_bad_config_values_are_one_sentence[ipv6, port, nul]
  ${VAR:-default} not a reference:
    I::test_a_default_in_a_reference_is_used_when_unset
  ${ VAR } not a reference:
    I::test_bad_config_values_are_one_sentence[spaced-ref, other-ref]
  CSV that grows while it is read:
    I::test_a_file_that_grows_while_it_is_read_is_read_as_it_was
Unclear or untidy
  non-UTF-8 byte: row but no column:
    I::test_non_utf8_byte_is_reported_by_row_and_column[in-the-head, past-the-head]
    I::test_classic_mac_file_with_a_bad_byte_names_row_and_column
  1 MB ticker echoed whole:
    I::test_a_megabyte_ticker_is_echoed_in_80_characters
  --memory-limit-mb 0 / negative:
    I::test_out_of_range_flags_get_one_sentence[--memory-limit-mb-0, -5]
  --max-concurrency 0 / negative:
    I::test_out_of_range_flags_get_one_sentence[--max-concurrency-0, -3]
  --memory-limit-mb 9999999999 accepted:
    I::test_out_of_range_flags_get_one_sentence[--memory-limit-mb-9999999999]
  refresh:
    /../etc/passwd leaves the lock .... I::test_a_refused_refresh_name_leaves_no_lock
    S::test_refresh_with_a_bad_portfolio_takes_no_lock
Cross-cutting (the brief)
  107-style random SIGKILLs, then a rerun:
    K::test_random_sigkills_of_discover_and_refresh_then_a_rerun
    e2e/test_discover.py::test_sigkill_mid_fetch_then_rerun
    e2e/test_refresh.py::test_refresh_killed_midway_resumes_with_only_the_remainder
  CSV reader fuzz:
    hostile/test_csv_fuzz.py::test_reader_gives_a_book_or_one_sentence
"""
