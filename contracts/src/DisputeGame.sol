// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {DataRoot} from "./DataRoot.sol";
import {NodeVm} from "./NodeVm.sol";
import {Registry} from "./Registry.sol";
import {Step} from "./Step.sol";
import {OFFSET_STATUS, OFFSET_STEP} from "./VmLayout.sol";

/// @title DisputeGame
/// @notice Requests, bonded results, and the two-phase dissection game that decides a disputed
/// result: first over the model's graph nodes (phase 2), then over the VM steps of the one disputed
/// node (phase 1), down to one step that the Step contract executes.
/// @dev docs/protocol.md section 12. The submitter of a result is the defender of every game on it:
/// it posts the `arity - 1` intermediate claims of the disputed segment, the challenger picks the
/// sub-segment whose right end it disputes. Every move spends the mover's chess clock; a party whose
/// clock runs out loses the game. Every game is played to its own end (all against all): each is a
/// contest of two equal bonds, the challenger's and the defender's (posted with its first move), and
/// its winner takes both. A rejected result's bond is burnt, never paid to a challenger, so a liar
/// gains nothing back through challengers of its own. Payments are credited and withdrawn (pull);
/// after every transaction `address(this).balance == locked + owed`.
contract DisputeGame {
    enum ResultStatus {
        None,
        Pending,
        Final,
        Rejected
    }

    /// The side of a game: the result's submitter (defender) or the game's challenger.
    enum Party {
        Submitter,
        Challenger
    }

    /// Why a game ended.
    enum Reason {
        /// The Step contract executed the disputed step.
        StepProof,
        /// The party to move let its clock run out.
        Timeout
    }

    struct RequestInfo {
        bytes32 model;
        /// Tensor commitment of the input (header ‖ data root).
        bytes32 input;
        address requester;
        /// The live (pending or final) result, 0 when none.
        uint64 result;
        /// The block of its `Requested` log, which carries the input data: a reader queries that
        /// one block instead of the whole chain (providers cap log ranges).
        uint32 blockNumber;
    }

    struct ResultInfo {
        uint64 request;
        address submitter;
        ResultStatus status;
        /// End of the challenge window (a timestamp).
        uint64 deadline;
        /// Games on this result still being played.
        uint32 openGames;
        /// Output commitment: the tensor commitment of the last node's output.
        bytes32 output;
        /// Phase-2 trace root: the trace state after the last node.
        bytes32 traceRoot;
    }

    struct GameInfo {
        uint64 result;
        address challenger;
        /// 2 = graph nodes, 1 = VM steps of `node`, 0 = over.
        uint8 phase;
        /// Whose move it is.
        Party turn;
        /// Set when over.
        Party winner;
        /// The disputed node (phase 1).
        uint32 node;
        /// The disputed segment: both sides agree on state `lo`, the challenger disputes state `hi`.
        uint64 lo;
        uint64 hi;
        /// When the last move was made (starts the mover's clock).
        uint64 lastMove;
        /// The block of the last `ClaimsPosted` log (the claims behind `claims`).
        uint32 claimsBlock;
        /// Seconds left on each party's clock.
        uint64 submitterClock;
        uint64 challengerClock;
        bytes32 claimLo;
        bytes32 claimHi;
        /// keccak of the defender's intermediate claims of the segment; 0 until posted.
        bytes32 claims;
        /// Whether the defender has posted its bond for this game (with its first move).
        bool defended;
    }

    /// What the defender shows to turn the disputed node `i` into a phase-1 game.
    struct NodeOpening {
        /// The node's op kind, params commitment and inputs (tag 0 request input, 1 weight, 2 node).
        uint8 kind;
        bytes32 params;
        uint8[] tags;
        uint32[] indices;
        /// Path of the node leaf in the model's nodes root.
        bytes32[] nodePath;
        /// The tensor commitment of each input.
        bytes32[] inputs;
        /// Paths of the weight (weights root) and node (trace state i) inputs, concatenated.
        bytes32[] inputPaths;
        /// O_i and its path in the trace, the same for state i (leaf 0) and state i+1 (leaf O_i).
        bytes32 output;
        bytes32[] outputPath;
        /// The claimed final VM state (237 bytes), its accumulator (868 bytes) and output header
        /// (whose hash is part of the node leaf).
        bytes finalState;
        bytes accumulator;
        bytes outputHeader;
    }

    event Requested(uint64 indexed request, bytes32 indexed model, address requester, bytes32 input, bytes data);
    event ResultPosted(
        uint64 indexed result,
        uint64 indexed request,
        address indexed submitter,
        bytes32 output,
        bytes32 traceRoot,
        uint64 deadline
    );
    event ResultFinalized(uint64 indexed result);
    event ResultRejected(uint64 indexed result, uint64 indexed game);
    /// A rejected result's bond, burnt (sent to the zero address).
    event Burnt(uint64 indexed result, uint256 amount);
    event GameStarted(
        uint64 indexed game, uint64 indexed result, address indexed challenger, uint64 nodes, bytes32 claimLo, bytes32 claimHi
    );
    event ClaimsPosted(uint64 indexed game, uint8 phase, uint64 lo, uint64 hi, bytes32[] claims);
    event SegmentPicked(
        uint64 indexed game, uint8 phase, uint64 index, uint64 lo, uint64 hi, bytes32 claimLo, bytes32 claimHi
    );
    event NodeOpened(
        uint64 indexed game, uint32 node, bytes32 output, bytes32 initialState, bytes32 finalState, uint64 steps
    );
    event StepProven(uint64 indexed game, uint64 step, bytes32 postState);
    event GameResolved(uint64 indexed game, uint64 indexed result, Party winner, Reason reason);
    event Credited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    error BadParameters();
    error UnknownModel(bytes32 model);
    error BadInputHeader();
    error BadInputLength(uint256 length, uint256 declared);
    error InputTooLarge(uint256 length, uint256 max);
    error NoSuchRequest(uint64 request);
    error RequestAnswered(uint64 request, uint64 result);
    error WrongBond(uint256 sent, uint256 required);
    error NoSuchResult(uint64 result);
    error ResultNotPending(uint64 result, ResultStatus status);
    error WindowClosed(uint64 deadline);
    error WindowOpen(uint64 deadline);
    error GamesOpen(uint32 count);
    error NoSuchGame(uint64 game);
    error GameOver(uint64 game);
    error NotYourTurn(Party turn);
    error WrongPhase(uint8 phase);
    error SegmentIsSingle(uint64 lo, uint64 hi);
    error SegmentNotSingle(uint64 lo, uint64 hi);
    error ClaimsPending();
    error NoClaims();
    error BadClaimCount(uint256 count, uint256 required);
    error ClaimsMismatch();
    error BadIndex(uint256 index, uint256 count);
    error ClockExpired(Party party);
    error ClockRunning(Party party, uint64 left);
    error NoKernel(uint8 kind);
    error BadNodeProof();
    error BadInputProof(uint256 input);
    error BadOutputProof();
    error OutputMismatch(bytes32 claimed, bytes32 proven);
    error BadStepCount(uint64 steps);
    error NothingToWithdraw();
    error TransferFailed();

    /// Largest request input in bytes (2,048 chunks).
    uint256 public constant MAX_INPUT_BYTES = 65536;
    /// Depth of the phase-2 trace tree.
    uint256 public constant TRACE_DEPTH = 16;

    Registry public immutable registry;
    Step public immutable stepVerifier;
    NodeVm public immutable nodeVm;
    /// Bond a submitter locks with each result.
    uint256 public immutable resultBond;
    /// Bond a challenger locks with each game, and the defender with its first move in it.
    uint256 public immutable challengeBond;
    /// Seconds after posting during which a result may be challenged.
    uint64 public immutable challengeWindow;
    /// Seconds on each party's chess clock per game.
    uint64 public immutable clock;
    /// Sub-segments per dissection move (2 = bisection).
    uint64 public immutable arity;
    /// Root of the empty trace tree: the state before node 0.
    bytes32 public immutable emptyTraceRoot;
    /// The block of deployment: where readers of the logs start.
    uint64 public immutable deploymentBlock;

    /// Wei held for pending results and open games.
    uint256 public locked;
    /// Wei credited and not yet withdrawn.
    uint256 public owed;
    /// Wei of rejected results' bonds burnt so far.
    uint256 public burnt;
    mapping(address => uint256) public credit;

    uint64 public requestCount;
    uint64 public resultCount;
    uint64 public gameCount;
    mapping(uint64 => RequestInfo) private _requests;
    mapping(uint64 => ResultInfo) private _results;
    mapping(uint64 => GameInfo) private _games;

    constructor(
        Registry registry_,
        Step step_,
        NodeVm nodeVm_,
        uint256 resultBond_,
        uint256 challengeBond_,
        uint64 challengeWindow_,
        uint64 clock_,
        uint64 arity_
    ) {
        if (arity_ < 2 || arity_ > 64 || clock_ == 0 || challengeWindow_ == 0) revert BadParameters();
        registry = registry_;
        stepVerifier = step_;
        nodeVm = nodeVm_;
        resultBond = resultBond_;
        challengeBond = challengeBond_;
        challengeWindow = challengeWindow_;
        clock = clock_;
        arity = arity_;
        bytes32 z;
        for (uint256 h = 0; h < TRACE_DEPTH; h++) {
            z = keccak256(abi.encodePacked(z, z));
        }
        emptyTraceRoot = z;
        deploymentBlock = uint64(block.number);
    }

    function request(uint64 id) external view returns (RequestInfo memory) {
        return _requests[id];
    }

    function result(uint64 id) external view returns (ResultInfo memory) {
        return _results[id];
    }

    function game(uint64 id) external view returns (GameInfo memory) {
        return _games[id];
    }

    // ---------------------------------------------------------------- requests and results

    /// Asks for `model` to be run on `data`, a tensor with header `inputHeader` (which must be the
    /// model's). The input's commitment is computed here and kept with the request.
    function requestInference(bytes32 model, bytes calldata inputHeader, bytes calldata data)
        external
        returns (uint64 id)
    {
        Registry.ModelInfo memory info = registry.model(model);
        if (info.owner == address(0)) revert UnknownModel(model);
        if (keccak256(inputHeader) != info.inputHeaderHash) revert BadInputHeader();
        if (data.length > MAX_INPUT_BYTES) revert InputTooLarge(data.length, MAX_INPUT_BYTES);
        uint256 declared = uint32(bytes4(inputHeader[0:4]));
        if (data.length != declared) revert BadInputLength(data.length, declared);
        bytes32 input = keccak256(abi.encodePacked(inputHeader, DataRoot.ofBytes(data)));
        id = ++requestCount;
        _requests[id] = RequestInfo(model, input, msg.sender, 0, uint32(block.number));
        emit Requested(id, model, msg.sender, input, data);
    }

    /// Posts the output commitment and trace root of request `requestId` with the result bond.
    function submitResult(uint64 requestId, bytes32 output, bytes32 traceRoot) external payable returns (uint64 id) {
        RequestInfo storage r = _requests[requestId];
        if (r.model == bytes32(0)) revert NoSuchRequest(requestId);
        if (r.result != 0) revert RequestAnswered(requestId, r.result);
        if (msg.value != resultBond) revert WrongBond(msg.value, resultBond);
        id = ++resultCount;
        uint64 deadline = uint64(block.timestamp) + challengeWindow;
        _results[id] = ResultInfo(requestId, msg.sender, ResultStatus.Pending, deadline, 0, output, traceRoot);
        r.result = id;
        locked += msg.value;
        emit ResultPosted(id, requestId, msg.sender, output, traceRoot, deadline);
    }

    /// Makes a result final once its window has passed with no open game; its bond is credited back.
    function finalize(uint64 resultId) external {
        ResultInfo storage res = _pendingResult(resultId);
        if (block.timestamp < res.deadline) revert WindowOpen(res.deadline);
        if (res.openGames != 0) revert GamesOpen(res.openGames);
        res.status = ResultStatus.Final;
        _pay(res.submitter, resultBond);
        emit ResultFinalized(resultId);
    }

    /// Pays out everything credited to the caller.
    function withdraw() external {
        uint256 amount = credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credit[msg.sender] = 0;
        owed -= amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---------------------------------------------------------------- the game

    /// Disputes a pending result within its window, with the challenge bond. Opens a phase-2 game
    /// over the trace states 0 (empty) .. nodeCount (the posted trace root).
    function challenge(uint64 resultId) external payable returns (uint64 id) {
        ResultInfo storage res = _pendingResult(resultId);
        if (block.timestamp >= res.deadline) revert WindowClosed(res.deadline);
        if (msg.value != challengeBond) revert WrongBond(msg.value, challengeBond);
        uint64 nodes = registry.model(_requests[res.request].model).nodeCount;
        id = ++gameCount;
        GameInfo storage g = _games[id];
        g.result = resultId;
        g.challenger = msg.sender;
        g.phase = 2;
        g.turn = Party.Submitter;
        g.hi = nodes;
        g.lastMove = uint64(block.timestamp);
        g.submitterClock = clock;
        g.challengerClock = clock;
        g.claimLo = emptyTraceRoot;
        g.claimHi = res.traceRoot;
        res.openGames += 1;
        locked += msg.value;
        emit GameStarted(id, resultId, msg.sender, nodes, emptyTraceRoot, res.traceRoot);
    }

    /// The defender's dissection move: the claims at the `min(arity, hi - lo) - 1` interior points
    /// `lo + (hi - lo) * j / m` of the disputed segment. The defender's first move in a game carries
    /// its bond (`challengeBond`), every later one nothing.
    function postClaims(uint64 gameId, bytes32[] calldata claims) external payable {
        GameInfo storage g = _move(gameId, Party.Submitter);
        _defend(g);
        if (g.hi - g.lo < 2) revert SegmentIsSingle(g.lo, g.hi);
        if (g.claims != bytes32(0)) revert ClaimsPending();
        uint256 m = _parts(g);
        if (claims.length != m - 1) revert BadClaimCount(claims.length, m - 1);
        g.claims = keccak256(abi.encodePacked(claims));
        g.claimsBlock = uint32(block.number);
        g.turn = Party.Challenger;
        emit ClaimsPosted(gameId, g.phase, g.lo, g.hi, claims);
    }

    /// The challenger's dissection move: sub-segment `index` of the posted claims (given again, as
    /// logged) becomes the disputed segment.
    function pick(uint64 gameId, uint64 index, bytes32[] calldata claims) external {
        GameInfo storage g = _move(gameId, Party.Challenger);
        if (g.claims == bytes32(0)) revert NoClaims();
        if (keccak256(abi.encodePacked(claims)) != g.claims) revert ClaimsMismatch();
        uint256 m = claims.length + 1;
        if (index >= m) revert BadIndex(index, m);
        uint64 lo = g.lo;
        uint64 len = g.hi - lo;
        bytes32 left = index == 0 ? g.claimLo : claims[index - 1];
        bytes32 right = index == m - 1 ? g.claimHi : claims[index];
        g.lo = lo + uint64((uint256(len) * index) / m);
        g.hi = lo + uint64((uint256(len) * (index + 1)) / m);
        g.claimLo = left;
        g.claimHi = right;
        g.claims = bytes32(0);
        // A single step of phase 1 is the challenger's to prove; anything else is the defender's.
        g.turn = (g.phase == 1 && g.hi - g.lo == 1) ? Party.Challenger : Party.Submitter;
        emit SegmentPicked(gameId, g.phase, index, g.lo, g.hi, left, right);
    }

    /// Ends phase 2 at node `i = lo`: proves that O_i is what turns trace state i into state i+1,
    /// builds node i's initial VM state from the registry, the request and state i, and checks the
    /// claimed final VM state against O_i. Phase 1 then disputes VM steps 0 .. T.
    function openNode(uint64 gameId, NodeOpening calldata o) external payable {
        GameInfo storage g = _move(gameId, Party.Submitter);
        _defend(g);
        if (g.phase != 2) revert WrongPhase(g.phase);
        if (g.hi - g.lo != 1) revert SegmentNotSingle(g.lo, g.hi);
        uint64 node = g.lo;
        ResultInfo storage res = _results[g.result];
        if (o.outputPath.length != TRACE_DEPTH) revert BadOutputProof();
        if (
            _rootOf(bytes32(0), node, o.outputPath, 0, TRACE_DEPTH) != g.claimLo
                || _rootOf(o.output, node, o.outputPath, 0, TRACE_DEPTH) != g.claimHi
        ) revert BadOutputProof();
        Registry.ModelInfo memory info = registry.model(_requests[res.request].model);
        if (node + 1 == info.nodeCount && o.output != res.output) revert OutputMismatch(res.output, o.output);
        bytes32 initial = _initialState(g, o, info, _requests[res.request].input);
        (bytes32 finalHash, bytes32 proven) = nodeVm.finalOutput(o.finalState, o.accumulator, o.outputHeader);
        if (proven != o.output) revert OutputMismatch(o.output, proven);
        uint64 steps = uint64(bytes8(o.finalState[OFFSET_STEP:OFFSET_STATUS]));
        // An exited state at step 0 would leave nothing to dissect (and no step to prove).
        if (steps == 0) revert BadStepCount(steps);
        g.phase = 1;
        g.node = uint32(node);
        g.lo = 0;
        g.hi = steps;
        g.claimLo = initial;
        g.claimHi = finalHash;
        g.turn = steps > 1 ? Party.Submitter : Party.Challenger;
        emit NodeOpened(gameId, uint32(node), o.output, initial, finalHash, steps);
    }

    /// Ends phase 1 at its single disputed step: the Step contract computes the post-state from the
    /// agreed pre-state; the defender wins if it equals its claim, the challenger otherwise. Either
    /// party may call it (a witness cannot lie: Step reverts on one that does not fit the pre-state).
    function proveStep(uint64 gameId, bytes calldata witness) external {
        GameInfo storage g = _active(gameId);
        if (g.phase != 1) revert WrongPhase(g.phase);
        if (g.hi - g.lo != 1) revert SegmentNotSingle(g.lo, g.hi);
        Party mover = _partyOf(g, msg.sender);
        _spend(g, mover);
        bytes32 post = stepVerifier.step(g.claimLo, witness);
        emit StepProven(gameId, g.lo, post);
        _resolve(gameId, g, post == g.claimHi ? Party.Submitter : Party.Challenger, Reason.StepProof);
    }

    /// Ends a game whose party to move has run out of clock; the other party wins. Anyone may call.
    function timeout(uint64 gameId) external {
        GameInfo storage g = _active(gameId);
        uint64 left = _clockOf(g, g.turn);
        uint64 elapsed = uint64(block.timestamp) - g.lastMove;
        if (elapsed < left) revert ClockRunning(g.turn, left - elapsed);
        _resolve(gameId, g, g.turn == Party.Submitter ? Party.Challenger : Party.Submitter, Reason.Timeout);
    }

    // ---------------------------------------------------------------- internals

    function _pendingResult(uint64 id) private view returns (ResultInfo storage res) {
        res = _results[id];
        if (res.status == ResultStatus.None) revert NoSuchResult(id);
        if (res.status != ResultStatus.Pending) revert ResultNotPending(id, res.status);
    }

    function _active(uint64 id) private view returns (GameInfo storage g) {
        g = _games[id];
        if (g.challenger == address(0)) revert NoSuchGame(id);
        if (g.phase == 0) revert GameOver(id);
    }

    /// Checks that `party` may move now and charges its clock. A game goes on after another game
    /// has rejected its result: its own bonds are still to be decided.
    function _move(uint64 id, Party party) private returns (GameInfo storage g) {
        g = _active(id);
        if (g.turn != party) revert NotYourTurn(g.turn);
        if (_partyOf(g, msg.sender) != party) revert NotYourTurn(g.turn);
        _spend(g, party);
    }

    function _partyOf(GameInfo storage g, address who) private view returns (Party) {
        if (who == _results[g.result].submitter) return Party.Submitter;
        if (who == g.challenger) return Party.Challenger;
        revert NotYourTurn(g.turn);
    }

    function _clockOf(GameInfo storage g, Party p) private view returns (uint64) {
        return p == Party.Submitter ? g.submitterClock : g.challengerClock;
    }

    /// Charges the time since the last move to `party`'s clock (only the party to move has a running
    /// clock; the other may still move at no cost, e.g. the defender proving a step).
    function _spend(GameInfo storage g, Party party) private {
        uint64 elapsed = uint64(block.timestamp) - g.lastMove;
        if (party == g.turn) {
            uint64 left = _clockOf(g, party);
            if (elapsed >= left) revert ClockExpired(party);
            if (party == Party.Submitter) g.submitterClock = left - elapsed;
            else g.challengerClock = left - elapsed;
            g.lastMove = uint64(block.timestamp);
        }
    }

    /// Takes the defender's bond with its first move in a game; later moves carry no value.
    function _defend(GameInfo storage g) private {
        uint256 bond = g.defended ? 0 : challengeBond;
        if (msg.value != bond) revert WrongBond(msg.value, bond);
        if (!g.defended) {
            g.defended = true;
            locked += bond;
        }
    }

    function _parts(GameInfo storage g) private view returns (uint256) {
        uint256 len = g.hi - g.lo;
        return len < arity ? len : arity;
    }

    /// The winner takes the game's bonds (the challenger's, and the defender's once posted). The
    /// first game a pending result loses rejects it and burns its bond: a liar cannot win it back
    /// through a challenger of its own, whichever game ends first.
    function _resolve(uint64 gameId, GameInfo storage g, Party winner, Reason reason) private {
        g.phase = 0;
        g.winner = winner;
        ResultInfo storage res = _results[g.result];
        res.openGames -= 1;
        uint256 stake = g.defended ? 2 * challengeBond : challengeBond;
        _pay(winner == Party.Submitter ? res.submitter : g.challenger, stake);
        if (winner == Party.Challenger && res.status == ResultStatus.Pending) {
            res.status = ResultStatus.Rejected;
            _requests[res.request].result = 0;
            emit ResultRejected(g.result, gameId);
            _burn(g.result, resultBond);
        }
        emit GameResolved(gameId, g.result, winner, reason);
    }

    function _burn(uint64 resultId, uint256 amount) private {
        locked -= amount;
        burnt += amount;
        emit Burnt(resultId, amount);
        (bool ok,) = address(0).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    function _pay(address to, uint256 amount) private {
        locked -= amount;
        owed += amount;
        credit[to] += amount;
        emit Credited(to, amount);
    }

    /// What a node's inputs are checked against.
    struct InputRoots {
        bytes32 request;
        bytes32 weightsRoot;
        uint256 weightCount;
        bytes32 state;
        uint256 node;
    }

    /// Node `lo`'s initial VM state hash: checks the node leaf against the model and each input's
    /// commitment against the request, the weights root or trace state `lo`.
    function _initialState(GameInfo storage g, NodeOpening calldata o, Registry.ModelInfo memory info, bytes32 input)
        private
        view
        returns (bytes32)
    {
        uint256 n = o.tags.length;
        if (o.indices.length != n || o.inputs.length != n) revert BadNodeProof();
        bytes memory leaf = abi.encodePacked(o.kind, o.params, keccak256(o.outputHeader), uint8(n));
        for (uint256 j = 0; j < n; j++) {
            leaf = abi.encodePacked(leaf, o.tags[j], o.indices[j]);
        }
        uint256 nodeDepth = _ceilLog2(info.nodeCount);
        if (o.nodePath.length != nodeDepth) revert BadNodeProof();
        if (_rootOf(keccak256(leaf), g.lo, o.nodePath, 0, nodeDepth) != info.nodesRoot) revert BadNodeProof();
        InputRoots memory roots = InputRoots(input, info.weightsRoot, info.weightCount, g.claimLo, g.lo);
        bytes32[] memory slots = new bytes32[](n + 1);
        slots[0] = o.params;
        uint256 offset = 0;
        for (uint256 j = 0; j < n; j++) {
            offset = _checkInput(o, j, offset, roots);
            slots[j + 1] = o.inputs[j];
        }
        if (offset != o.inputPaths.length) revert BadInputProof(n);
        Registry.KernelImage memory image = registry.kernel(o.kind);
        if (image.memRoot == bytes32(0)) revert NoKernel(o.kind);
        return nodeVm.initialStateHash(image.memRoot, image.entry, slots);
    }

    /// Checks input `j`'s commitment; its path starts at `offset` of `inputPaths`. Returns where the
    /// next input's path starts.
    function _checkInput(NodeOpening calldata o, uint256 j, uint256 offset, InputRoots memory roots)
        private
        pure
        returns (uint256)
    {
        uint8 tag = o.tags[j];
        uint256 index = o.indices[j];
        bool ok;
        if (tag == 0) {
            ok = o.inputs[j] == roots.request;
        } else {
            (uint256 depth, uint256 count, bytes32 root) = tag == 1
                ? (_ceilLog2(roots.weightCount), roots.weightCount, roots.weightsRoot)
                : (TRACE_DEPTH, roots.node, roots.state);
            ok = tag <= 2 && index < count && offset + depth <= o.inputPaths.length
                && _rootOf(o.inputs[j], index, o.inputPaths, offset, depth) == root;
            offset += depth;
        }
        if (!ok) revert BadInputProof(j);
        return offset;
    }

    /// The root of a depth-`depth` tree with `leaf` at `index` and siblings `path[offset..]`
    /// (bottom up); 0 when `index` does not fit the depth.
    function _rootOf(bytes32 leaf, uint256 index, bytes32[] calldata path, uint256 offset, uint256 depth)
        private
        pure
        returns (bytes32 node)
    {
        if (index >> depth != 0) return bytes32(0);
        node = leaf;
        for (uint256 h = 0; h < depth; h++) {
            bytes32 sibling = path[offset + h];
            node = (index >> h) & 1 == 1
                ? keccak256(abi.encodePacked(sibling, node))
                : keccak256(abi.encodePacked(node, sibling));
        }
    }

    function _ceilLog2(uint256 n) private pure returns (uint256 d) {
        while ((uint256(1) << d) < n) d++;
    }
}
